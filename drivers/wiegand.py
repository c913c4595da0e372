"""Wiegand 26/34 bit frames as strings of '0'/'1' (DESIGN §4).

Layout (bit 0 is the first bit on the wire):
  26: bit 0 even parity over bits 1-12, bits 1-24 data (8-bit facility, 16-bit card), bit 25 odd parity over 13-24
  34: bit 0 even parity over bits 1-16, bits 1-32 data (32-bit card), bit 33 odd parity over 17-32
The card number is the whole data field, so a 26-bit read is facility<<16 | card.
"""

from __future__ import annotations

from drivers.frames import Card, FrameError

WIEGAND_LENGTHS: tuple[int, ...] = (26, 34)
_BINARY = frozenset("01")


def _halves(bits: int) -> int:
    """Bits covered by each parity bit, the parity bit included (13 for 26, 17 for 34)."""
    return bits // 2


def decode_wiegand(bits: str) -> Card:
    """Return (card_number, bit_count) or raise FrameError(garbage|length|parity)."""
    if not bits or not _BINARY.issuperset(bits):
        bad = sorted(set(bits) - _BINARY)[:5] if bits else []
        raise FrameError("garbage", f"not a bit string (bad chars {bad!r})" if bits else "empty frame")
    count = len(bits)
    if count not in WIEGAND_LENGTHS:
        raise FrameError("length", f"{count} bits, expected 26 or 34")
    half = _halves(count)
    # Even parity: bit 0 and the bits it covers hold an even number of ones.
    if bits[:half].count("1") % 2 != 0:
        raise FrameError("parity", f"W{count} leading even parity (bit 0) mismatch")
    # Odd parity: the last bit and the bits it covers hold an odd number of ones.
    if bits[half:].count("1") % 2 != 1:
        raise FrameError("parity", f"W{count} trailing odd parity (bit {count - 1}) mismatch")
    return Card(int(bits[1:-1], 2), count)


def encode_wiegand(number: int, bits: int) -> str:
    """Build a valid frame (simulators, tests). `number` must fit the data field."""
    if bits not in WIEGAND_LENGTHS:
        raise ValueError(f"Wiegand length must be 26 or 34, not {bits}")
    data_bits = bits - 2
    if not 0 <= number < 1 << data_bits:
        raise ValueError(f"{number} does not fit in {data_bits} data bits")
    data = format(number, f"0{data_bits}b")
    half = _halves(bits)
    first, second = data[: half - 1], data[half - 1 :]
    even = "1" if first.count("1") % 2 else "0"
    odd = "0" if second.count("1") % 2 else "1"
    return even + data + odd
