"""Enrolment photos are decoded and checked in a worker process, one upload at a time.

Decoding a 50-megapixel PNG and finding faces in it takes seconds and hundreds
of MB: on the API's event loop it would stall every other request. In the
worker it costs that process only (the API runs at a lower priority than the
doors anyway), and a decoder that crashes on a hostile file loses the worker,
not the API.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from config.models import RecognitionConfig
from gateway.api.errors import ApiError
from gateway.enrolment import PhotoResult, check_agreement

WAIT_FOR_SLOT_S = 30.0  # a second administrator's upload waits this long for the first


class PhotoChecker:
    def __init__(self, concurrent_uploads: int = 1) -> None:
        self._slots = asyncio.Semaphore(concurrent_uploads)
        self._pool: ProcessPoolExecutor | None = None

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a forked child would inherit the API's thread locks in whatever state they were.
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(os.getpid(),))  # fmt: skip
        return self._pool

    async def assess(self, photos: Sequence[tuple[str, bytes]], cfg: RecognitionConfig) -> list[PhotoResult]:
        try:
            await asyncio.wait_for(self._slots.acquire(), WAIT_FOR_SLOT_S)
        except TimeoutError:
            raise ApiError(429, "busy", "another enrolment is being checked; try again in a minute") from None
        try:
            from recognition.quality import assess_photo  # dlib loads in the worker, on first use

            loop = asyncio.get_running_loop()
            results = []
            for name, data in photos:  # one at a time: one decoded photo in memory, not five
                try:
                    check = partial(assess_photo, landmarks=cfg.landmarks, jitters=cfg.enrol_jitters, mirror=cfg.mirror)
                    verdict = await loop.run_in_executor(self._workers(), check, data)
                except BrokenProcessPool:
                    self._pool = None
                    raise ApiError(422, "photo_rejected", f"{name}: the photo could not be decoded") from None
                results.append(PhotoResult(name, verdict))
            return check_agreement(results, cfg.enrol_agreement)
        finally:
            self._slots.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _init_worker(api_pid: int) -> None:
    from gateway.priorities import die_with_parent

    die_with_parent(api_pid, signal.SIGKILL)  # a photo being checked is not worth outliving the API
