from __future__ import annotations

import pytest

from drivers.frames import Card, FrameError
from drivers.wiegand import decode_wiegand, encode_wiegand

# Hand-built vectors, independent of encode_wiegand.
# W26, facility 1, card 1: bits 1-12 hold one '1' -> even parity bit 1; bits 13-24 hold one '1' -> odd parity bit 0.
W26_FAC1_CARD1 = "1" + "00000001" + "0000000000000001" + "0"
# W34, card 1: bits 1-16 all zero -> even parity 0; bits 17-32 hold one '1' -> odd parity 0.
W34_CARD1 = "0" + "0" * 31 + "1" + "0"
# W34, card 0: odd parity over nothing set must be 1.
W34_CARD0 = "0" + "0" * 32 + "1"


def flip(bits: str, index: int) -> str:
    return bits[:index] + ("1" if bits[index] == "0" else "0") + bits[index + 1 :]


def test_hand_vectors_decode() -> None:
    assert decode_wiegand(W26_FAC1_CARD1) == (1 << 16 | 1, 26)
    assert decode_wiegand(W34_CARD1) == (1, 34)
    assert decode_wiegand(W34_CARD0) == (0, 34)
    assert isinstance(decode_wiegand(W34_CARD1), Card)


def test_encode_matches_hand_vectors() -> None:
    assert encode_wiegand(1 << 16 | 1, 26) == W26_FAC1_CARD1
    assert encode_wiegand(1, 34) == W34_CARD1
    assert encode_wiegand(0, 34) == W34_CARD0


@pytest.mark.parametrize(
    ("number", "bits"),
    [(0, 26), (1, 26), (0xFFFFFF, 26), (0x7B11D7, 26), (0, 34), (0xFFFFFFFF, 34), (0xDEADBEEF, 34), (123456789, 34)],
)
def test_round_trip(number: int, bits: int) -> None:
    frame = encode_wiegand(number, bits)
    assert len(frame) == bits
    assert decode_wiegand(frame) == (number, bits)


@pytest.mark.parametrize("bits", [26, 34])
def test_leading_even_parity_error(bits: int) -> None:
    frame = encode_wiegand(0x5A5A5A, bits)
    for index in (0, 1, bits // 2 - 1):  # the parity bit itself, and data bits it covers
        with pytest.raises(FrameError) as err:
            decode_wiegand(flip(frame, index))
        assert err.value.kind == "parity"
        assert "leading" in err.value.detail


@pytest.mark.parametrize("bits", [26, 34])
def test_trailing_odd_parity_error(bits: int) -> None:
    frame = encode_wiegand(0x5A5A5A, bits)
    for index in (bits - 1, bits - 2, bits // 2):
        with pytest.raises(FrameError) as err:
            decode_wiegand(flip(frame, index))
        assert err.value.kind == "parity"
        assert "trailing" in err.value.detail


@pytest.mark.parametrize("length", [1, 25, 27, 33, 35, 40])
def test_wrong_length(length: int) -> None:
    with pytest.raises(FrameError) as err:
        decode_wiegand("0" * length)
    assert err.value.kind == "length"


@pytest.mark.parametrize("text", ["", "0101x" + "0" * 21, "2" * 26, " " + W34_CARD1[1:], W34_CARD1[:-1] + "\t"])
def test_garbage(text: str) -> None:
    with pytest.raises(FrameError) as err:
        decode_wiegand(text)
    assert err.value.kind == "garbage"


def test_encode_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        encode_wiegand(1 << 24, 26)
    with pytest.raises(ValueError):
        encode_wiegand(-1, 34)
    with pytest.raises(ValueError):
        encode_wiegand(1, 40)


def test_frame_error_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        FrameError("nonsense", "x")  # type: ignore[arg-type]
    assert FrameError("parity", "a") == FrameError("parity", "a")
