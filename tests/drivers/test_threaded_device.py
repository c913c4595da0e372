"""ThreadedDevice, the thread skeleton of the serial reader, the Modbus module and the RTSP capture.

A scripted fake device drives the skeleton: each session is one step of the script. Waits between
attempts are recorded instead of slept where the test is about the backoff values.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.events import DriverEvent, ReaderStatus
from drivers.threaded_device import ThreadedDevice
from tests.drivers.support import Events, wait_until

Step = Callable[["FakeDevice"], str]


def fail(error: str) -> Step:
    return lambda device: error


def online_then_fail(seconds: float, error: str) -> Step:
    def step(device: FakeDevice) -> str:
        device._set_online(True)
        time.sleep(seconds)
        return error

    return step


def boom(device: FakeDevice) -> str:
    raise RuntimeError("driver bug")


class FakeDevice(ThreadedDevice):
    HEALTHY_AFTER_S = 0.1

    def __init__(
        self,
        emit: Callable[[DriverEvent], None],
        steps: list[Step],
        *,
        record_pauses: bool = True,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
    ) -> None:
        super().__init__("fake", "f1", emit, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s)
        self._steps = iter(steps)
        self._record_pauses = record_pauses
        self.pauses: list[float] = []
        self.back_after_pause: set[int] = set()  # indexes of pauses that end with "the device is back"
        self.sessions = 0
        self.exits = 0

    def _session(self) -> str:
        self.sessions += 1
        step = next(self._steps, None)
        if step is None:  # script done: end the thread as stop() would
            self._stop.set()
            return ""
        return step(self)

    def _pause(self, seconds: float) -> bool:
        if not self._record_pauses:
            return super()._pause(seconds)
        self.pauses.append(seconds)
        return len(self.pauses) - 1 in self.back_after_pause

    def _status_event(self, online: bool, error: str | None) -> ReaderStatus:
        return ReaderStatus(reader="f1", online=online, error=error)

    def _stop_timeout(self) -> float:
        return 0.5

    def _thread_exit(self) -> None:
        self.exits += 1


@pytest.fixture
def make_device(events: Events) -> Iterator[Callable[..., FakeDevice]]:
    devices: list[FakeDevice] = []

    def make(steps: list[Step], **kwargs: object) -> FakeDevice:
        device = FakeDevice(events, steps, **kwargs)  # type: ignore[arg-type]
        devices.append(device)
        return device

    try:
        yield make
    finally:
        for device in devices:
            device.stop()


def run_to_end(device: FakeDevice) -> None:
    device.start()
    thread = device._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()


def statuses(events: Events) -> list[tuple[bool, str | None]]:
    return [(e.online, e.error) for e in events.of(ReaderStatus)]


def test_backoff_doubles_up_to_its_cap(make_device) -> None:
    device = make_device([fail("gone")] * 7)
    run_to_end(device)
    assert device.pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_a_healthy_session_starts_the_backoff_over(make_device) -> None:
    steps = [fail("a"), fail("b"), online_then_fail(0.15, "c"), fail("d"), online_then_fail(0.0, "e"), fail("f")]
    device = make_device(steps)
    run_to_end(device)
    # c was online longer than HEALTHY_AFTER_S: a new outage. e failed right after opening: keep backing off.
    assert device.pauses == [0.1, 0.2, 0.1, 0.2, 0.4, 0.8]


def test_retry_at_once_after_a_healthy_session(make_device) -> None:
    class Eager(FakeDevice):
        RETRY_AT_ONCE_AFTER_HEALTHY = True

    device = Eager(lambda event: None, [fail("a"), fail("b"), online_then_fail(0.15, "c"), fail("d")])
    run_to_end(device)
    assert device.pauses == [0.1, 0.2, 0.1]  # none after c; d waits the shortest time again
    assert device.sessions == 5


def test_a_device_back_during_the_pause_starts_the_backoff_over(make_device) -> None:
    device = make_device([fail("a")] * 4)
    device.back_after_pause = {1}
    run_to_end(device)
    assert device.pauses == [0.1, 0.2, 0.1, 0.2]


def test_online_is_reported_once_per_change(make_device, events: Events) -> None:
    steps = [fail("first"), fail("second"), online_then_fail(0.0, "lost"), online_then_fail(0.0, "lost again")]
    steps += [fail("third")]
    device = make_device(steps)
    assert device.online is False
    run_to_end(device)
    assert statuses(events) == [(False, "first"), (True, None), (False, "lost"), (True, None), (False, "lost again")]
    assert device.online is False


def test_stop_joins_the_thread_and_is_not_an_outage(make_device, events: Events) -> None:
    def serve(device: FakeDevice) -> str:
        device._set_online(True)
        device._stop.wait(10)
        return ""

    device = make_device([serve], record_pauses=False)
    device.start()
    thread = device._thread
    events.wait(lambda e: isinstance(e, ReaderStatus) and e.online)
    assert device.online
    started = time.monotonic()
    device.stop()
    assert time.monotonic() - started < 0.5
    assert thread is not None and not thread.is_alive() and device._thread is None
    assert statuses(events) == [(True, None)]  # no offline event for a stop
    assert device.exits == 1


def test_stop_is_prompt_while_waiting_to_retry(make_device) -> None:
    device = make_device([fail("gone")] * 3, record_pauses=False, backoff_initial_s=30.0, backoff_max_s=30.0)
    device.start()
    wait_until(lambda: device.sessions >= 1, timeout=2, what="first attempt")
    started = time.monotonic()
    device.stop()
    assert time.monotonic() - started < 0.5
    assert device.sessions == 1


def test_start_twice_runs_one_thread_and_a_stopped_device_starts_again(make_device) -> None:
    def serve(device: FakeDevice) -> str:
        device._stop.wait(10)
        return ""

    device = make_device([serve, serve], record_pauses=False)
    device.start()
    first = device._thread
    device.start()
    assert device._thread is first
    device.stop()
    device.start()
    assert device._thread is not None and device._thread is not first and device._thread.is_alive()


def test_a_thread_that_outlives_stop_is_never_doubled(make_device, caplog) -> None:
    release = threading.Event()

    def blocked(device: FakeDevice) -> str:
        release.wait(10)  # a call that ignores stop(), like an OpenCV open
        return ""

    device = make_device([blocked], record_pauses=False)
    device.start()
    wait_until(lambda: device.sessions == 1, timeout=2, what="session")
    with caplog.at_level(logging.ERROR):
        device.stop(timeout=0.05)
    assert "thread did not stop" in caplog.text
    assert device._thread is not None and device._thread.is_alive()
    with pytest.raises(RuntimeError, match="still blocked"):
        device.start()
    release.set()
    device.start()  # the old thread ends: a new one may start
    wait_until(lambda: device.sessions == 2, timeout=2, what="second session")


def test_a_driver_bug_is_logged_and_reported_and_the_thread_goes_on(make_device, events: Events, caplog) -> None:
    device = make_device([boom, fail("after the bug")])
    with caplog.at_level(logging.ERROR):
        run_to_end(device)
    assert "fake f1: unexpected error" in caplog.text
    assert "Traceback" in caplog.text and "driver bug" in caplog.text
    assert statuses(events) == [(False, "RuntimeError: driver bug")]  # offline once; the next failure is no change
    assert device.sessions == 3  # it tried again after the bug
    assert device.exits == 1


def test_a_failing_consumer_does_not_stop_the_device(caplog) -> None:
    calls: list[DriverEvent] = []

    def emit(event: DriverEvent) -> None:
        calls.append(event)
        raise RuntimeError("consumer bug")

    device = FakeDevice(emit, [fail("a"), online_then_fail(0.0, "b")])
    with caplog.at_level(logging.ERROR):
        run_to_end(device)
    assert "fake f1: emit failed" in caplog.text
    assert [e.online for e in calls if isinstance(e, ReaderStatus)] == [False, True, False]
    assert device.sessions == 3
