"""Width and height of a JPEG, PNG or BMP from its header, without decoding it.

Probing a frame folder checks that every frame has the first frame's size; decoding thousands of stills
for that would cost seconds to minutes, reading a few header bytes costs milliseconds.
"""

from __future__ import annotations

import struct
from pathlib import Path

HEAD_BYTES = 65536  # a JPEG's SOF marker follows its EXIF/ICC segments, which fit in this in practice
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): not DHT (C4), JPG (C8) or DAC (CC).
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(head: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # stand-alone markers carry no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in SOF_MARKERS:
            h, w = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return (w, h) if w > 0 and h > 0 else None
        pos += 2 + length
    return None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) read from the header, or None when the header is not one we read (or is broken):
    the caller then decodes the file to learn its size or that it is unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    if head[:2] == b"\xff\xd8":
        return _jpeg(head)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return (w, h) if w > 0 and h > 0 else None
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])  # a negative height is a top-down BMP
        return (w, abs(h)) if w > 0 and h != 0 else None
    return None
