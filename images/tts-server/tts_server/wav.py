"""Minimal 16-bit PCM WAV encode/decode (no temp files, no ``wave`` object overhead)."""

from __future__ import annotations

import struct
from typing import Tuple

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def encode(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap little-endian 16-bit PCM samples in a canonical 44-byte WAV header."""
    n = len(pcm)
    header = _HEADER.pack(
        b"RIFF", 36 + n, b"WAVE", b"fmt ", 16, 1, channels, sample_rate,
        sample_rate * channels * 2, channels * 2, 16, b"data", n,
    )
    return header + pcm


def decode_pcm16(data: bytes) -> Tuple[bytes, int, int]:
    """Return (pcm, sample_rate, channels) of a 16-bit PCM WAV.

    Tolerates the streamed headers espeak-ng writes to a pipe (bogus sizes): the data chunk
    is taken to run to the end of the buffer when its declared size is larger.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos = 12
    rate = channels = bits = None
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if cid == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if fmt != 1 or bits != 16:
                raise ValueError(f"unsupported WAV format {fmt}/{bits} bit")
        elif cid == b"data":
            if rate is None:
                raise ValueError("data chunk before fmt chunk")
            end = min(len(data), body + size)
            pcm = data[body:end]
            if len(pcm) % 2:
                pcm = pcm[:-1]
            return pcm, rate, channels
        pos = body + size + (size & 1)
    raise ValueError("no data chunk")
