"""RDM6300 (125 kHz EM4100) serial frames (DESIGN §4).

STX 0x02, 10 ASCII-hex chars (version byte + 32-bit tag), 2 ASCII-hex chars
holding the XOR of those 5 bytes, ETX 0x03: 14 bytes in all.
"""

from __future__ import annotations

import binascii

from drivers.frames import Card, FrameError

STX = 0x02
ETX = 0x03
FRAME_LEN = 14
PAYLOAD_LEN = 12  # 10 data + 2 checksum hex chars
CARD_BITS = 40  # version byte + 32-bit tag, as the events contract says
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def decode_payload(payload: bytes) -> Card:
    """Decode the 12 chars between STX and ETX; raise FrameError(length|garbage|checksum)."""
    if len(payload) != PAYLOAD_LEN:
        raise FrameError("length", f"{len(payload)} chars between STX and ETX, expected {PAYLOAD_LEN}")
    if not _HEX.issuperset(payload):
        raise FrameError("garbage", f"non-hex chars in frame {payload!r}")
    raw = binascii.unhexlify(payload)
    data, checksum = raw[:5], raw[5]
    xor = 0
    for byte in data:
        xor ^= byte
    if xor != checksum:
        raise FrameError("checksum", f"XOR {xor:02X} != checksum {checksum:02X} in {payload.decode()!r}")
    return Card(int.from_bytes(data[1:], "big"), CARD_BITS)


def decode_rdm6300(frame: bytes) -> Card:
    """Decode one whole frame, STX and ETX included."""
    if len(frame) != FRAME_LEN:
        raise FrameError("length", f"frame of {len(frame)} bytes, expected {FRAME_LEN}")
    if frame[0] != STX or frame[-1] != ETX:
        raise FrameError("garbage", "frame does not start with STX and end with ETX")
    return decode_payload(frame[1:-1])


def encode_rdm6300(tag: int, version: int = 0) -> bytes:
    """Build a valid frame (simulators, tests)."""
    if not 0 <= tag < 1 << 32:
        raise ValueError(f"tag {tag} does not fit in 32 bits")
    if not 0 <= version < 256:
        raise ValueError(f"version {version} does not fit in a byte")
    data = bytes([version]) + tag.to_bytes(4, "big")
    xor = 0
    for byte in data:
        xor ^= byte
    return bytes([STX]) + binascii.hexlify(data + bytes([xor])).upper() + bytes([ETX])
