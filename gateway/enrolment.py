"""Face enrolment shared by the CLI and the API: all photos pass, or nothing is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from config.models import RecognitionConfig
from gateway.store.audit import audit
from gateway.store.roster import add_face_templates, delete_face_templates, get_tenant
from recognition.agreement import disagreeing

if TYPE_CHECKING:
    from recognition.quality import PhotoVerdict

MAX_PHOTOS = 5


@dataclass(frozen=True, slots=True)
class PhotoResult:
    name: str
    verdict: PhotoVerdict


class EnrolmentError(ValueError):
    """Enrolment refused as a whole (wrong photo count, unknown tenant)."""


def assess_photos(photos: Sequence[tuple[str, bytes]], cfg: RecognitionConfig) -> list[PhotoResult]:
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise EnrolmentError(f"give 1 to {MAX_PHOTOS} photos, not {len(photos)}")
    # dlib and its models (~150 MB) load at the first enrolment, not in every card-only gateway.
    from recognition.quality import assess_photo

    results = [PhotoResult(name, assess_photo(data, landmarks=cfg.landmarks, jitters=cfg.enrol_jitters,
                                              mirror=cfg.mirror)) for name, data in photos]  # fmt: skip
    return check_agreement(results, cfg.enrol_agreement)


def check_agreement(results: list[PhotoResult], max_distance: float) -> list[PhotoResult]:
    """Photos that passed their own checks but look like nobody else of the set are refused."""
    passed = [i for i, r in enumerate(results) if r.verdict.ok and r.verdict.encoding is not None]
    odd = {passed[j] for j in disagreeing([results[i].verdict.encoding for i in passed], max_distance)}  # type: ignore[misc]
    return [
        PhotoResult(r.name, replace(r.verdict, ok=False, reason="not_the_same_person", encoding=None, quality=0.0,
                                    detail=f"This face does not match any other photo of the set (farther than "
                                           f"{max_distance:g}): another person, or the wrong face was taken."))
        if i in odd else r
        for i, r in enumerate(results)
    ]  # fmt: skip


def enrol_faces(
    session: Session, tenant_id: str, results: list[PhotoResult], actor: str, *, replace: bool = False
) -> int:
    """Store the templates of `results` if every photo passed; returns how many were stored.

    `replace`: the tenant's other templates go in the same transaction (audited as one "face.replace").
    """
    get_tenant(session, tenant_id)
    if not results or not all(r.verdict.ok for r in results):
        return 0
    import numpy as np  # only where faces are enrolled

    rows = []
    for r in results:
        assert r.verdict.encoding is not None
        rows.append((np.asarray(r.verdict.encoding, dtype="<f4").tobytes(), r.verdict.quality, r.verdict.sha256))
    removed = delete_face_templates(session, tenant_id) if replace else 0
    stored = add_face_templates(session, tenant_id, rows)
    if replace:
        audit(session, actor, "face.replace", {"tenant_id": tenant_id, "templates": stored, "removed": removed})
    else:
        audit(session, actor, "face.enrol", {"tenant_id": tenant_id, "templates": stored})
    return stored
