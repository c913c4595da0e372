"""What libosdp's control panel hands over, as cards and tamper states; and the feedback commands it sends.

Pure translation, no I/O (DESIGN §4 (c)): a raw Wiegand read carries its bit count and the bits
packed most significant first, left-aligned in the bytes (OSDP's rule); it is checked exactly like
a Wiegand frame of that length (drivers/wiegand.py). An ASCII read carries the card number in
decimal digits. A read that fails a check is a FrameError: counted, logged, never decided on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osdp import CardFormat, Command, CommandLEDColor, StatusReportType

from drivers.frames import Card, FrameError
from drivers.wiegand import decode_wiegand

ASCII_CARD_BITS = 32  # an enrolled card is an integer of up to 32 bits (DESIGN §4): matched on all of them
MAX_CARD_NUMBER = (1 << 32) - 1

# Feedback at the reader (DESIGN §4): a grant shows green and beeps once, a refusal red and beeps twice.
# Times are in OSDP's units of 100 ms. The LED state is temporary: after FEEDBACK_LED_S the reader goes
# back to its permanent (idle) colour by itself, so a lost follow-up command cannot leave it green.
FEEDBACK_LED_S = 2.0
_LED_TEMPORARY_SET = 2  # osdp_LED temporary control code: set this state and start the timer
_BUZZER_DEFAULT_TONE = 2  # osdp_BUZ tone code: the reader's default tone
_BEEP_ON, _BEEP_OFF = 2, 1  # 200 ms beep, 100 ms pause


def card_of_read(event: Mapping[str, Any]) -> Card:
    """The card in a libosdp CardRead event, or FrameError(length|parity|garbage|overlong)."""
    data = event.get("data")
    if not isinstance(data, bytes | bytearray):
        raise FrameError("garbage", "card read without data")
    fmt = event.get("format")
    if fmt == CardFormat.ASCII:
        return _ascii_card(bytes(data))
    if fmt in (CardFormat.Wiegand, CardFormat.Unspecified):
        return decode_wiegand(_left_aligned_bits(bytes(data), event.get("length")))
    raise FrameError("garbage", f"unknown card format {fmt!r}")


def _left_aligned_bits(data: bytes, length: object) -> str:
    if not isinstance(length, int) or length <= 0:
        raise FrameError("length", f"raw read with bit count {length!r}")
    if len(data) * 8 < length:
        raise FrameError("length", f"{length} bits announced, {len(data)} bytes sent")
    return format(int.from_bytes(data, "big"), f"0{len(data) * 8}b")[:length]


def _ascii_card(data: bytes) -> Card:
    text = data.decode("ascii", errors="replace").strip()
    if not text.isdigit() or not text.isascii():
        raise FrameError("garbage", f"ASCII read is not decimal digits ({len(data)} bytes)")
    number = int(text)
    if number > MAX_CARD_NUMBER:
        raise FrameError("overlong", f"ASCII card number of {len(text)} digits exceeds 32 bits")
    return Card(number, ASCII_CARD_BITS)


def tamper_of(event: Mapping[str, Any]) -> bool | None:
    """True/False from a local status report (its first byte is the tamper state); None for other reports."""
    if event.get("type") != StatusReportType.Local:
        return None
    report = event.get("report")
    if not isinstance(report, bytes | bytearray) or not report:
        return None
    return report[0] != 0


def feedback_commands(granted: bool, reader_no: int = 0) -> list[dict[str, Any]]:
    """The osdp_LED and osdp_BUZ commands that show a decision at the reader."""
    colour = CommandLEDColor.Green if granted else CommandLEDColor.Red
    ticks = int(FEEDBACK_LED_S * 10)
    led = {
        "command": Command.LED,
        "reader": reader_no,
        "led_number": 0,
        "temporary": True,
        "control_code": _LED_TEMPORARY_SET,
        "on_color": colour,
        "off_color": colour,  # the same colour on and off: steady, no blinking
        "on_count": ticks,
        "off_count": 0,
        "timer_count": ticks,
    }
    buzzer = {
        "command": Command.Buzzer,
        "reader": reader_no,
        "control_code": _BUZZER_DEFAULT_TONE,
        "on_count": _BEEP_ON,
        "off_count": _BEEP_OFF,
        "rep_count": 1 if granted else 2,
    }
    return [led, buzzer]
