from __future__ import annotations

import pytest

from drivers.framers import Rdm6300Framer, WiegandTextFramer, framer_for
from drivers.frames import Card, FrameError, FrameResult
from drivers.rdm6300 import decode_rdm6300, encode_rdm6300
from drivers.wiegand import encode_wiegand

W34 = encode_wiegand(0xDEADBEEF, 34)
W26 = encode_wiegand(0x7B11D7, 26)


def kinds(results: list[FrameResult]) -> list[str]:
    return [r.kind if isinstance(r, FrameError) else "card" for r in results]


def feed_bytewise(framer: WiegandTextFramer | Rdm6300Framer, data: bytes) -> list[FrameResult]:
    out: list[FrameResult] = []
    for i in range(len(data)):
        out += framer.feed(data[i : i + 1])
    return out


# --- wiegand-text -----------------------------------------------------------


def test_wiegand_plain_and_prefixed_lines() -> None:
    framer = WiegandTextFramer()
    data = f"{W34}\n{W26}\nW34:{W34}\r\nW26:{W26}\r\n".encode()
    assert framer.feed(data) == [(0xDEADBEEF, 34), (0x7B11D7, 26), (0xDEADBEEF, 34), (0x7B11D7, 26)]


def test_wiegand_crlf_is_one_end_and_empty_lines_are_ignored() -> None:
    framer = WiegandTextFramer()
    assert framer.feed(f"\r\n\r\n{W34}\r\n\r\n\n\r{W26}\r".encode()) == [Card(0xDEADBEEF, 34), Card(0x7B11D7, 26)]
    # CR and LF split over two reads still end one line.
    assert framer.feed(f"{W34}\r".encode()) == [Card(0xDEADBEEF, 34)]
    assert framer.feed(b"\n") == []


def test_wiegand_frames_split_anywhere() -> None:
    data = f"W34:{W34}\r\n{W26}\n".encode() * 3
    assert feed_bytewise(WiegandTextFramer(), data) == [(0xDEADBEEF, 34), (0x7B11D7, 26)] * 3


def test_wiegand_no_frame_before_its_end() -> None:
    framer = WiegandTextFramer()
    assert framer.feed(W34.encode()) == []
    assert framer.feed(b"\n") == [(0xDEADBEEF, 34)]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"W26:{W34}", "length"),  # prefix disagrees with the bit count
        (f"W34:{W26}", "length"),
        (f"W40:{'0' * 40}", "length"),
        (f"W34:{W34[:-1]}", "length"),
        ("0" * 30, "length"),
        ("01" * 20, "length"),
        (f"X34:{W34}", "garbage"),
        (f"W34:{W34[:-1]}2", "garbage"),
        (f"{W34} ", "garbage"),
        ("hello", "garbage"),
        (f"W34:{W34[:10]}a{W34[11:]}", "garbage"),
        (f"W34:{W34[:-1]}{'1' if W34[-1] == '0' else '0'}", "parity"),
    ],
)
def test_wiegand_bad_lines(line: str, kind: str) -> None:
    framer = WiegandTextFramer()
    results = framer.feed(line.encode() + b"\r\n" + f"{W26}\n".encode())
    assert kinds(results) == [kind, "card"], results


def test_wiegand_non_ascii_is_garbage() -> None:
    assert kinds(WiegandTextFramer().feed(b"\xff\xfe01\n")) == ["garbage"]


def test_wiegand_10k_line_is_one_overlong_error_then_next_frame_decodes() -> None:
    framer = WiegandTextFramer()
    results: list[FrameResult] = []
    line = b"01" * 5000  # 10 kB, no end yet
    for i in range(0, len(line), 100):
        results += framer.feed(line[i : i + 100])
        assert len(framer._line) <= WiegandTextFramer.MAX_LINE  # never buffers the whole line
    results += framer.feed(b"\r\n" + f"W34:{W34}\r\n".encode())
    assert kinds(results) == ["overlong", "card"]
    assert results[1] == (0xDEADBEEF, 34)


def test_wiegand_overlong_in_one_read_and_keeps_working() -> None:
    framer = WiegandTextFramer()
    data = b"x" * 10_000 + b"\n" + W26.encode() + b"\n" + b"1" * 500 + b"\r\n" + W34.encode() + b"\n"
    assert kinds(framer.feed(data)) == ["overlong", "card", "overlong", "card"]


def test_wiegand_line_limit_is_128_bytes() -> None:
    assert kinds(WiegandTextFramer().feed(b"0" * 128 + b"\n")) == ["length"]
    assert kinds(WiegandTextFramer().feed(b"0" * 129 + b"\n")) == ["overlong"]


def test_wiegand_reset_forgets_a_partial_line() -> None:
    framer = WiegandTextFramer()
    framer.feed(b"0101")
    framer.reset()
    assert framer.feed(f"{W34}\n".encode()) == [(0xDEADBEEF, 34)]


# --- rdm6300 ----------------------------------------------------------------

# Datasheet example: version 0x62, tag 0xE3086CED, checksum 0x62^0xE3^0x08^0x6C^0xED = 0x08.
DATASHEET = b"\x0262E3086CED08\x03"


def test_rdm6300_known_frame() -> None:
    assert decode_rdm6300(DATASHEET) == (0xE3086CED, 40)
    assert encode_rdm6300(0xE3086CED, version=0x62) == DATASHEET
    assert decode_rdm6300(DATASHEET.lower()) == (0xE3086CED, 40)  # lowercase hex is accepted
    assert Rdm6300Framer().feed(DATASHEET) == [(0xE3086CED, 40)]


@pytest.mark.parametrize("tag", [0, 1, 0xFFFFFFFF, 12345678])
def test_rdm6300_round_trip(tag: int) -> None:
    assert decode_rdm6300(encode_rdm6300(tag, version=7)) == (tag, 40)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"\x0262E3086CED09\x03", "checksum"),
        (b"\x0262E3086CEE08\x03", "checksum"),
        (b"\x0262E3086CXD08\x03", "garbage"),
        (b"\x0262E3086CED0\x03", "length"),
        (b"\x0262E3086CED08", "length"),
        (b"\x0362E3086CED08\x02", "garbage"),
    ],
)
def test_rdm6300_decode_errors(frame: bytes, kind: str) -> None:
    with pytest.raises(FrameError) as err:
        decode_rdm6300(frame)
    assert err.value.kind == kind


def test_rdm6300_framer_bad_frames_then_resync() -> None:
    framer = Rdm6300Framer()
    good = encode_rdm6300(42)
    stream = (
        b"\x0262E3086CED09\x03"  # bad checksum
        + b"\x0262E3086CXD08\x03"  # bad hex
        + b"\x0262E3\x03"  # short
        + b"\x0262E3086C"  # cut short by the next STX
        + good
    )
    results = framer.feed(stream)
    assert kinds(results) == ["checksum", "garbage", "length", "length", "card"]
    assert results[-1] == (42, 40)


def test_rdm6300_garbage_run_counts_once_when_stx_arrives() -> None:
    framer = Rdm6300Framer()
    assert framer.feed(b"noise") == []  # not yet: the run may go on
    assert framer.feed(b"\x03\x03xx") == []
    results = framer.feed(encode_rdm6300(7) + b"ab" + encode_rdm6300(8))
    assert kinds(results) == ["garbage", "card", "garbage", "card"]
    assert results[0].detail.startswith("9 bytes")


def test_rdm6300_long_garbage_run_reported_at_14_bytes_once() -> None:
    framer = Rdm6300Framer()
    assert framer.feed(b"z" * 13) == []
    assert kinds(framer.feed(b"z")) == ["garbage"]
    assert framer.feed(b"z" * 5000) == []  # the same run
    assert framer.feed(encode_rdm6300(9)) == [(9, 40)]


def test_rdm6300_frame_without_etx_is_one_error() -> None:
    framer = Rdm6300Framer()
    too_long = b"\x0262E3086CED08FFFF\x03"
    assert kinds(framer.feed(too_long + encode_rdm6300(5))) == ["length", "card"]
    # A frame that never ends does not swallow the stream: noise after it counts again.
    assert kinds(framer.feed(b"\x02" + b"A" * 60 + encode_rdm6300(6))) == ["length", "garbage", "card"]


def test_rdm6300_split_bytewise() -> None:
    data = (encode_rdm6300(1) + b"\xff" + encode_rdm6300(2)) * 2
    assert kinds(feed_bytewise(Rdm6300Framer(), data)) == ["card", "garbage", "card"] * 2


def test_framer_for() -> None:
    assert isinstance(framer_for("wiegand-text"), WiegandTextFramer)
    assert isinstance(framer_for("rdm6300"), Rdm6300Framer)
    with pytest.raises(ValueError):
        framer_for("osdp")
