"""CPU and memory priorities: the doors first, the API after them, the API first out under memory pressure.

On Linux a nice value belongs to a thread and is inherited by the threads and
processes it starts, so each process sets its own before it starts any.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

DOOR_NICE = -10  # also the unit's Nice=: a busy program on the controller (even the API) must not delay a card
API_NICE = 10
API_OOM_SCORE_ADJ = 500
PR_SET_PDEATHSIG = 1


# A door thread waiting for the GIL asks the holder (a camera's frame hand-over, the face results thread)
# to let go only after this long; CPython's default is 5 ms, a whole card budget.
DOOR_GIL_SWITCH_S = 0.001


def door_first() -> None:
    """The door process: nice -10 when allowed (root, CAP_SYS_NICE, or the unit's Nice=-10 already), and
    a 1 ms GIL switch interval."""
    sys.setswitchinterval(DOOR_GIL_SWITCH_S)
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current <= DOOR_NICE:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, DOOR_NICE)
    except PermissionError:
        log.info("running at nice %d: give the service Nice=%d (the shipped unit does) so that "
                 "other programs on this controller cannot delay a door", current, DOOR_NICE)  # fmt: skip


def api_after_doors() -> None:
    """The API process: an absolute nice 10 whatever it inherited, and first in line for the OOM killer."""
    os.setpriority(os.PRIO_PROCESS, 0, max(API_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    try:
        Path("/proc/self/oom_score_adj").write_text(str(API_OOM_SCORE_ADJ))
    except OSError:
        pass


DOOR_RT_PRIORITY = 10  # SCHED_RR: above every ordinary program, far below the kernel's own threads


def door_realtime(start_door_threads: Callable[[], None]) -> bool:
    """Run the calling (loop) thread and the door threads it starts now under SCHED_RR.

    Only the door's path gets it: the loop thread, then the reader and relay threads it starts
    (they inherit it). Afterwards the loop thread sets "reset on fork", so every thread or process
    it starts later (executor threads, the API, camera work) starts as an ordinary one.
    A card's work is a few milliseconds of CPU; under SCHED_RR it is never queued behind
    ordinary programs, which nice alone does not promise on a busy 2-core controller.
    Needs root, CAP_SYS_NICE or LimitRTPRIO (the unit gives LimitRTPRIO=10); else nothing changes.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(DOOR_RT_PRIORITY))
    except OSError as exc:
        log.info("door threads at ordinary priority (%s); the unit's LimitRTPRIO=%d allows SCHED_RR",
                 exc.strerror, DOOR_RT_PRIORITY)  # fmt: skip
        start_door_threads()
        return False
    try:
        start_door_threads()
    finally:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(DOOR_RT_PRIORITY))
    return True


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Get `sig` when the parent dies, even by SIGKILL: no orphan keeps the port or the memory."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        log.warning("cannot ask to be stopped with the parent process (not Linux?)")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """For pool workers: end this process within `every_s` of the parent's death (a SIGKILL included).

    Not PR_SET_PDEATHSIG: that fires when the parent *thread* that started the worker ends, and a pool
    starts its workers from whichever thread submits work. A daemon thread watching the parent's pid is
    what holds for every thread model."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
