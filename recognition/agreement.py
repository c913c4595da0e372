"""Do a tenant's enrolment photos show one person? (numpy only: the API process checks it without dlib)."""

from __future__ import annotations

import numpy as np


def disagreeing(encodings: list[np.ndarray], max_distance: float) -> list[int]:
    """Indexes of the templates farther than `max_distance` from every other one of the set.

    Photos of one person lie within dlib's 0.6 of each other; one that matches none of the others is
    another person or the wrong face taken, and would let that face in under the tenant's name. With
    one photo nothing can be told; with two that disagree, both are named.
    """
    if len(encodings) < 2:
        return []
    stack = np.stack([np.asarray(e, dtype=np.float32) for e in encodings])
    d = np.linalg.norm(stack[:, None, :] - stack[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return [i for i in range(len(encodings)) if float(d[i].min()) > max_distance]
