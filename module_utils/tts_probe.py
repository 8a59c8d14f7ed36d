#!/usr/bin/env python3
"""Real-synthesis health probe for the TTS service.

A TTS instance is healthy only when it answers a tiny synthesis request with real audio: the
expected HTTP status, an audio Content-Type, a body recognised as audio and, for WAV, long enough
and not silent. A fake ``/health`` that returns ``{"status": "ok"}`` proves nothing about the model.

Standard library only, Python 3.9+: this file also runs on bare hosts, where Keepalived's
vrrp_script calls it through ``bin/tts-synthesis-check``. Everything that decides "does it speak"
imports it (Ansible module, on-host check, image HEALTHCHECK, drill load generator).

Public API: probe(), analyze_audio(), main() (the CLI) and ProbeArgumentError.
"""

from __future__ import annotations

import argparse
import array
import http.client
import inspect
import io
import json
import math
import operator
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from urllib.parse import urljoin, urlsplit

__all__ = ["PRESETS", "ContractError", "ProbeArgumentError", "analyze_audio", "build_request",
           "check_contract", "contract_probe_arguments", "counter_from_text", "definitive_failure", "haproxy_check", "main",
           "probe", "resolve_contract"]

DEFAULT_PAYLOAD = {"text": "a"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
# Digital silence has no finite dBFS value; reporting a floor keeps results valid JSON.
SILENCE_FLOOR_DBFS = -120.0

# RMS is estimated from at most this many windows spread evenly over the samples, so that
# measuring a multi-megabyte body stays cheap (the drill analyses every response).
_RMS_WINDOWS = 16
_RMS_WINDOW_FRAMES = 4096
_READ_CHUNK = 64 * 1024
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Methods that carry no body by convention, so the default payload is not sent with them.
_BODYLESS_METHODS = ("GET", "HEAD", "OPTIONS")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_WAVE_PCM = 0x0001
_WAVE_FLOAT = 0x0003
_WAVE_EXTENSIBLE = 0xFFFE
_WAV_STREAMING_SIZE = 0xFFFFFFFF
# Sizes a streaming WAV writer leaves in the header because it cannot seek back to patch them
# (espeak-ng --stdout, xtts-streaming-server, Kokoro-FastAPI's streamed wav).
_WAV_PLACEHOLDER_SIZES = (_WAV_STREAMING_SIZE, 0x7FFFF000, 0x7FFFFFFF)
# array typecode holding a 32-bit signed int ("i" everywhere in practice, "l" on odd ABIs).
_INT32 = "i" if array.array("i").itemsize == 4 else "l"
_RESULT_KEYS = (
    "healthy", "reason", "url", "status", "content_type", "bytes", "latency_ms", "audio_format",
    "sample_rate", "channels", "duration_s", "rms_dbfs", "instance", "checks", "definitive",
)


class ProbeArgumentError(ValueError):
    """An invalid probe() argument.

    ``argument`` names the probe() parameter, so callers can report it under their own option
    name (Ansible option, CLI flag) instead of as a failed health check.
    """

    def __init__(self, argument, detail):
        super().__init__(f"{argument}: {detail}")
        self.argument = argument
        self.detail = detail


class _Failure(Exception):
    """The exchange failed in a way that has a ready-made human reason."""


# --------------------------------------------------------------------------------------------
# Audio analysis
# --------------------------------------------------------------------------------------------

def analyze_audio(body, expected_format="any", pcm=None):
    """Identify the audio in ``body`` and, for WAV and headerless PCM, measure it.

    expected_format: what the API contract promises (wav, mp3, ogg, flac, pcm or any); another
    recognised format is an error. "pcm" reads the body as headerless little-endian samples
    described by ``pcm`` ({"rate", "width" in bytes, "channels"}).

    ``body`` is any bytes-like object. Returns a dict: format ("wav", "mp3", "ogg", "flac" or
    None), sample_rate, channels, bits_per_sample, encoding ("pcm"/"float"), duration_s, rms_dbfs,
    streaming (WAV sizes left at 0/0xFFFFFFFF by a streaming writer) and error (None, or a
    sentence saying why the body is not usable audio). Only WAV is measured; the other formats
    are recognised by their magic bytes. Malformed audio never raises, it sets ``error``.
    """
    info = {
        "format": None, "sample_rate": None, "channels": None, "bits_per_sample": None,
        "encoding": None, "duration_s": None, "rms_dbfs": None, "streaming": False, "error": None,
    }
    view = memoryview(body).cast("B")
    head = bytes(view[:12])
    if expected_format == "pcm" and head and not (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        _analyze_pcm(view, info, pcm or {})
        return info
    if not head:
        info["error"] = "empty body"
    elif head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        info["format"] = "wav"
        _analyze_wav(view, info)
    elif head[:4] == b"OggS":
        info["format"] = "ogg"
    elif head[:4] == b"fLaC":
        info["format"] = "flac"
    elif head[:3] == b"ID3" or _is_mp3_frame_header(head):
        info["format"] = "mp3"
    else:
        info["error"] = f"body is not recognised audio (starts with {_preview(view)})"
    if info["format"] and expected_format not in (None, "any", info["format"]):
        wanted = "headerless PCM" if expected_format == "pcm" else expected_format
        info["error"] = f"expected {wanted} audio (answer.format), got {info['format']}"
    return info


def _analyze_pcm(view, info, pcm):
    """Headerless PCM as the contract declares it: measure duration and level."""
    rate, width, channels = pcm.get("rate", 22050), pcm.get("width", 2), pcm.get("channels", 1)
    info.update(format="pcm", sample_rate=rate, channels=channels, bits_per_sample=width * 8,
                encoding="pcm")
    frame_size = width * channels
    frames = len(view) // frame_size
    info["duration_s"] = round(frames / rate, 4)
    if not frames:
        info["error"] = "empty body" if not len(view) else "PCM body shorter than one frame"
        return
    # 8-bit PCM is read as unsigned, like 8-bit WAV.
    info["rms_dbfs"] = _rms_dbfs(view[:frames * frame_size], frames, frame_size, width * 8, "pcm")


def _is_mp3_frame_header(head):
    """MPEG audio frame sync plus the header fields that have reserved/invalid values."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x03
    layer = (head[1] >> 1) & 0x03
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x03
    # Layer bits 00 also rules out ADTS AAC, which shares the sync word.
    return version != 1 and layer != 0 and bitrate_index != 0x0F and rate_index != 3


def _analyze_wav(view, info):
    """Walk the RIFF chunks for fmt and data, then measure duration and RMS."""
    size = len(view)
    riff_size = struct.unpack_from("<I", view, 4)[0]
    fmt = None
    data = None
    pos = 12
    while pos + 8 <= size and (fmt is None or data is None):
        chunk_id = bytes(view[pos:pos + 4])
        chunk_size = struct.unpack_from("<I", view, pos + 4)[0]
        start = pos + 8
        present = size - start
        if chunk_id == b"data":
            # Streaming writers cannot seek back to patch sizes: they leave 0xFFFFFFFF, or 0 in
            # both RIFF and data. Then the data runs to the end of the body.
            if chunk_size in _WAV_PLACEHOLDER_SIZES or (
                    chunk_size == 0 and riff_size in (0,) + _WAV_PLACEHOLDER_SIZES):
                info["streaming"] = True
                data = view[start:]
                break  # nothing can follow data that runs to the end
            elif chunk_size > present:
                info["error"] = (f"WAV data chunk declares {chunk_size} bytes but only {present}"
                                 " are present (truncated)")
                return
            else:
                data = view[start:start + chunk_size]
        elif chunk_size > present:
            info["error"] = (f"WAV {chunk_id.decode('latin-1')!r} chunk declares {chunk_size}"
                             f" bytes but only {present} are present (truncated)")
            return
        elif chunk_id == b"fmt ":
            fmt = _parse_wav_fmt(view, start, chunk_size, info)
            if fmt is None:
                return
        pos = start + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    if fmt is None:
        info["error"] = "WAV has no fmt chunk"
        return
    if data is None:
        info["error"] = "WAV has no data chunk"
        return
    rate, channels, bits, encoding = fmt
    frame_size = channels * bits // 8
    frames = len(data) // frame_size
    if info["streaming"] and not frames:
        info["error"] = "WAV stream ended before any audio (header only)"
        return
    info["duration_s"] = round(frames / rate, 4)
    if frames:
        info["rms_dbfs"] = _rms_dbfs(data, frames, frame_size, bits, encoding)
        if info["rms_dbfs"] is None:
            info["error"] = "WAV float samples contain NaN or infinity"


def _parse_wav_fmt(view, start, chunk_size, info):
    """Return (rate, channels, bits, encoding), or None with info["error"] set."""
    if chunk_size < 16:
        info["error"] = f"WAV fmt chunk is {chunk_size} bytes, expected at least 16"
        return None
    tag, channels, rate, _byte_rate, _block_align, bits = struct.unpack_from("<HHIIHH", view, start)
    if tag == _WAVE_EXTENSIBLE and chunk_size >= 40:
        # WAVE_FORMAT_EXTENSIBLE: the real format tag opens the SubFormat GUID.
        tag = struct.unpack_from("<H", view, start + 24)[0]
    if tag == _WAVE_PCM and bits in (8, 16, 24, 32):
        encoding = "pcm"
    elif tag == _WAVE_FLOAT and bits in (32, 64):
        encoding = "float"
    else:
        info["error"] = f"unsupported WAV encoding (format tag 0x{tag:04x}, {bits} bits per sample)"
        return None
    if channels == 0 or rate == 0:
        info["error"] = f"WAV fmt chunk declares {channels} channels at {rate} Hz"
        return None
    info.update(sample_rate=rate, channels=channels, bits_per_sample=bits, encoding=encoding)
    return rate, channels, bits, encoding


def _rms_dbfs(data, frames, frame_size, bits, encoding):
    """RMS level of the samples in dBFS (full-scale sine = -3 dBFS); None if not finite."""
    total = 0.0
    count = 0
    for first, last in _rms_windows(frames):
        samples, full_scale = _decode_samples(bytes(data[first * frame_size:last * frame_size]),
                                              bits, encoding)
        total += sum(map(operator.mul, samples, samples)) / (full_scale * full_scale)
        count += len(samples)
    if not math.isfinite(total):
        return None
    rms = math.sqrt(total / count)
    if rms == 0.0:
        return SILENCE_FLOOR_DBFS
    return round(max(SILENCE_FLOOR_DBFS, 20.0 * math.log10(rms)), 2)


def _rms_windows(frames):
    """Frame ranges to measure: everything when short, else evenly spread windows."""
    if frames <= _RMS_WINDOWS * _RMS_WINDOW_FRAMES:
        return [(0, frames)]
    step = (frames - _RMS_WINDOW_FRAMES) // (_RMS_WINDOWS - 1)
    return [(i * step, i * step + _RMS_WINDOW_FRAMES) for i in range(_RMS_WINDOWS)]


def _decode_samples(chunk, bits, encoding):
    """Little-endian WAV sample bytes -> (sequence of numbers, full-scale value)."""
    if bits == 8:
        return [byte - 128 for byte in chunk], 128.0  # 8-bit WAV is unsigned
    if encoding == "float":
        samples, full_scale = array.array("f" if bits == 32 else "d"), 1.0
    elif bits == 16:
        samples, full_scale = array.array("h"), 32768.0
    else:
        if bits == 24:
            # No 24-bit array type: place each sample in the top 3 bytes of an int32.
            wide = bytearray(len(chunk) // 3 * 4)
            for offset in range(3):
                wide[offset + 1::4] = chunk[offset::3]
            chunk = wide
        samples, full_scale = array.array(_INT32), 2.0 ** 31
    samples.frombytes(chunk)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, full_scale


def _preview(data, limit=60):
    """Short printable excerpt of a body for reasons, e.g. "'<!DOCTYPE html>...'"."""
    text = " ".join(bytes(data[:limit * 2]).decode("utf-8", "replace").split())
    if len(text) > limit or len(data) > limit * 2:
        text = text[:limit] + "..."
    return repr(text)


# --------------------------------------------------------------------------------------------
# HTTP with one deadline for everything
# --------------------------------------------------------------------------------------------

def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("probe deadline reached")
    return left


class _DeadlineSocket:
    """Socket facade that re-arms the timeout to the time left before every operation.

    A plain socket timeout applies per recv(), so a server trickling one byte at a time could
    stretch a probe indefinitely; here every read and write shares the probe's deadline.
    """

    def __init__(self, sock, deadline):
        self._sock = sock
        self._deadline = deadline
        # Like socket.makefile(): the connection and each reader hold a reference, and the
        # socket closes with the last one (http.client closes the connection before the body
        # of a "Connection: close" response has been read).
        self._refs = 1

    def sendall(self, data):
        self._sock.settimeout(_remaining(self._deadline))
        self._sock.sendall(data)

    def recv_into(self, buffer):
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode="rb"):  # http.client reads responses through this
        self._refs += 1
        return io.BufferedReader(_DeadlineReader(self))

    def close(self):
        self._refs -= 1
        if self._refs == 0:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock):
        super().__init__()
        self._sock = sock

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._sock.recv_into(buffer)

    def close(self):
        if not self.closed:
            self._sock.close()
        super().close()


class _Exchange:
    """State of one probe's HTTP exchange; `phase` says what a timeout interrupted."""

    def __init__(self, deadline, ssl_context):
        self.deadline = deadline
        self.ssl_context = ssl_context
        self.phase = "starting"
        self.host = None
        self.port = None
        self.status = None
        self.headers = None
        self.received = 0
        self.body = b""


class _DeadlineConnection(http.client.HTTPConnection):
    """HTTP(S) connection whose DNS lookup, connect, TLS handshake and I/O share a deadline."""

    def __init__(self, host, port, exchange, ssl_context):
        super().__init__(host, port)
        self._exchange = exchange
        self._ssl_context = ssl_context
        if ssl_context is not None:
            self.default_port = 443  # keeps the Host header free of ":443"

    def connect(self):
        exchange = self._exchange
        exchange.phase = f"resolving {self.host}"
        addresses = _resolve(self.host, self.port, exchange.deadline)
        exchange.phase = f"connecting to {self.host}:{self.port}"
        sock = _connect_any(addresses, exchange.deadline)
        if self._ssl_context is not None:
            exchange.phase = f"in the TLS handshake with {self.host}"
            try:
                sock.settimeout(_remaining(exchange.deadline))
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = _DeadlineSocket(sock, exchange.deadline)


def _resolve(host, port, deadline):
    """getaddrinfo() ignores socket timeouts, so run it in a thread we can stop waiting for."""
    outcome = {}

    def lookup():
        try:
            outcome["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="tts-probe-dns", daemon=True)
    worker.start()
    worker.join(_remaining(deadline))
    if worker.is_alive():
        raise socket.timeout(f"resolving {host} took too long")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["addresses"]


def _connect_any(addresses, deadline):
    """Connect to the first address that accepts (IPv6/IPv4 fallback), within the deadline."""
    last_error = OSError("no addresses")
    for family, kind, proto, _name, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
            if isinstance(exc, socket.timeout):
                break  # the deadline is spent; trying further addresses cannot succeed
    raise last_error


def _exchange_once(exchange, url, method, body, headers, max_bytes):
    """Send one request and read the full response into `exchange`."""
    parts = urlsplit(url)
    exchange.status = exchange.headers = None  # a redirect hop starts afresh
    exchange.received = 0
    exchange.body = b""
    exchange.host = parts.hostname
    exchange.port = parts.port or (443 if parts.scheme == "https" else 80)
    context = exchange.ssl_context if parts.scheme == "https" else None
    conn = _DeadlineConnection(exchange.host, exchange.port, exchange, context)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    response = None
    try:
        conn.connect()
        exchange.phase = "sending the request"
        conn.request(method, path, body=body, headers=headers)
        exchange.phase = "waiting for response headers"
        response = conn.getresponse()
        exchange.status = response.status
        exchange.headers = response.headers
        exchange.phase = "reading the body"
        declared = response.getheader("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _Failure(f"Content-Length {declared} exceeds max_bytes {max_bytes}")
        chunks = []
        while True:
            try:
                # read1: one socket read at a time, so `received` is exact when time runs out.
                chunk = response.read1(min(_READ_CHUNK, max_bytes + 1 - exchange.received))
            except http.client.IncompleteRead as exc:  # a chunked body cut short
                raise _Failure(f"response body truncated: connection closed after"
                               f" {exchange.received + len(exc.partial)} bytes") from None
            if not chunk:
                break
            chunks.append(chunk)
            exchange.received += len(chunk)
            if exchange.received > max_bytes:
                raise _Failure(f"response body exceeds max_bytes {max_bytes}")
        if response.length:  # http.client does not complain when Content-Length is not met
            raise _Failure(f"response body truncated: connection closed after {exchange.received}"
                           f" bytes, {response.length} more were announced")
        exchange.body = b"".join(chunks)
    finally:
        if response is not None:
            response.close()
        conn.close()


def _follow(exchange, url, method, body, headers, max_bytes, follow_redirects, tls):
    """Run the exchange, following at most MAX_REDIRECTS redirects when asked."""
    for _hop in range(MAX_REDIRECTS + 1):
        _exchange_once(exchange, url, method, body, headers, max_bytes)
        status = exchange.status
        if not follow_redirects or status not in _REDIRECT_STATUSES:
            return
        location = exchange.headers.get("Location")
        if not location:
            raise _Failure(f"redirect {status} without a Location header")
        url = urljoin(url, location)
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise _Failure(f"redirect {status} to unsupported URL {url!r}")
        if scheme == "https" and exchange.ssl_context is None:
            exchange.ssl_context = _ssl_context(*tls)
        if status == 303:
            # "See Other" means: fetch the result with GET. 301/302/307/308 repeat the
            # synthesis request as is, since the text has to reach the new location.
            method, body = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    raise _Failure(f"more than {MAX_REDIRECTS} redirects")


def _describe_failure(exc, exchange, timeout):
    """Human reason for an exchange that produced no complete response."""
    phase = exchange.phase
    if isinstance(exc, _Failure):
        return str(exc)
    if isinstance(exc, socket.timeout):
        received = f" ({exchange.received} bytes received)" if exchange.status else ""
        return f"timed out after {timeout:g} s {phase}{received}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed for {exchange.host}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error {phase}: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {exchange.host}:{exchange.port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {exchange.host}: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"network error {phase}: {exc.strerror or exc}"
    return f"invalid HTTP response {phase}: {exc.__class__.__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------

def _check_url(url):
    if not isinstance(url, str):
        raise ProbeArgumentError("url", f"must be a string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ProbeArgumentError("url", f"{exc} in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise ProbeArgumentError("url", f"must be an http:// or https:// URL with a host, got {url!r}")


def _check_number(name, value, minimum=None, exclusive=False, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProbeArgumentError(name, f"must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (exclusive and value == minimum)):
        raise ProbeArgumentError(name, f"must be {'>' if exclusive else '>='} {minimum:g}, got {value!r}")


def _check_text(name, value):
    if value is not None and not isinstance(value, str):
        raise ProbeArgumentError(name, f"must be a string, got {type(value).__name__}")


def _encode_payload(method, payload):
    """Request body and the Content-Type it implies (None: leave it to the caller)."""
    if payload is None:
        if method in _BODYLESS_METHODS:
            return None, None
        payload = DEFAULT_PAYLOAD
    if isinstance(payload, (dict, list)):
        try:
            return json.dumps(payload).encode("utf-8"), "application/json"
        except (TypeError, ValueError) as exc:
            raise ProbeArgumentError("payload", f"cannot be encoded as JSON: {exc}") from None
    if isinstance(payload, str):
        return payload.encode("utf-8"), None
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload), None
    raise ProbeArgumentError(
        "payload", f"must be a dict or list (sent as JSON), str or bytes, got {type(payload).__name__}")


def _build_headers(headers, content_type):
    # no-cache: a health check must exercise the model, not the server's audio cache.
    merged = {"User-Agent": "tts-ha-probe", "Accept": "audio/*, */*;q=0.1",
              "Cache-Control": "no-cache", "Connection": "close"}
    if content_type:
        merged["Content-Type"] = content_type
    if headers is None:
        return merged
    if not isinstance(headers, dict):
        raise ProbeArgumentError("headers", f"must be a dict, got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise ProbeArgumentError("headers", f"invalid header name {name!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ProbeArgumentError("headers", f"value of {name} must be a string")
        value = str(value)
        if any(char in value for char in "\r\n\0"):
            raise ProbeArgumentError("headers", f"value of {name} contains a line break or NUL")
        for existing in [key for key in merged if key.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


def _status_codes(expected_status):
    codes = (expected_status,) if isinstance(expected_status, int) else expected_status
    try:
        codes = tuple(codes)
    except TypeError:
        codes = ()
    if not codes or any(isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599
                        for code in codes):
        raise ProbeArgumentError(
            "expected_status", f"must be one or more HTTP status codes (100-599), got {expected_status!r}")
    return codes


def _ssl_context(validate_certs, ca_path, client_cert, client_key):
    for name, path in (("ca_path", ca_path), ("client_cert", client_cert), ("client_key", client_key)):
        _check_text(name, path)
        if path is not None and not os.path.exists(path):
            raise ProbeArgumentError(name, f"{path!r} does not exist")
    if client_key and not client_cert:
        raise ProbeArgumentError("client_key", "needs client_cert")
    try:
        if ca_path and os.path.isdir(ca_path):
            context = ssl.create_default_context(capath=ca_path)
        else:
            context = ssl.create_default_context(cafile=ca_path or None)
    except (ssl.SSLError, OSError) as exc:
        raise ProbeArgumentError("ca_path", f"cannot load CA certificates: {exc}") from None
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key or None)
        except (ssl.SSLError, OSError) as exc:
            raise ProbeArgumentError("client_cert", f"cannot load client certificate: {exc}") from None
    return context


# --------------------------------------------------------------------------------------------
# The TTS API contract: how a server is asked to speak and what a good answer is
# --------------------------------------------------------------------------------------------
# One home for the kit's knowledge of TTS HTTP APIs. Inventory picks a preset by name
# (tts_api_preset) and overrides any field (tts_api_overrides); resolve_contract() merges and checks them,
# and every consumer (module, on-host check, HAProxy checks, drill load) builds its request with
# build_request() from the resolved dict. Each preset cites the server source it was read from.

TEXT_PLACEMENTS = ("json", "query", "form", "multipart", "raw")
AUDIO_FORMATS = ("wav", "mp3", "ogg", "flac", "pcm", "any")
# Fixed so that rendered HAProxy checks stay the same from run to run.
_MULTIPART_BOUNDARY = "tts-ha-7f3a9c51e2d84b06"
_PLACEHOLDER_TOKEN_RE = re.compile(r"change[_ -]?me|replace[_ -]?me|placeholder|^<.*>$|^x+$|^todo$",
                                   re.IGNORECASE)

_CONTRACT_BASE = {
    "port": 8000,
    "method": "POST",
    "path": "/tts",
    "text": {"in": "json", "field": "text"},
    "fields": {},
    "headers": {},
    "auth": {"header": "Authorization", "scheme": "Bearer", "token": ""},
    "answer": {"status": [200], "content_type": "audio/", "format": "wav",
               "pcm": {"rate": 22050, "width": 2, "channels": 1}},
    "probe": {"text": "a", "headers": {}, "lane": False},
    # Evidence that a server which does not answer a probe in time is still speaking: a
    # Prometheus counter of completed syntheses on the server itself (metrics_url + metric).
    "evidence": {"metrics_path": "", "metric": ""},
}

PRESETS = {
    # This kit's image (images/tts-server/tts_server/app.py: POST /tts {"text"}, audio/wav;
    # X-TTS-Probe requests <= 16 chars run on their own lane; /metrics counts answers).
    "reference": {
        "probe": {"headers": {"X-TTS-Probe": "1"}, "lane": True},
        "evidence": {"metrics_path": "/metrics", "metric": "tts_audio_seconds_total"},
    },
    # OpenAI's speech API as served by Kokoro-FastAPI (api/src/routers/openai_compatible.py
    # @032990d create_speech, api/src/structures/schemas.py OpenAISpeechRequest: POST
    # /v1/audio/speech, input required, model tts-1 accepted, voice af_heart, response_format
    # mp3 by default, stream true by default, so the WAV arrives chunked with placeholder sizes),
    # openedai-speech (speech.py @0fce679, port 8000, always streamed through ffmpeg), speaches,
    # vLLM-Omni and the GLM-TTS server forks. Port 8880 is Kokoro-FastAPI's; override for others.
    "openai": {
        "port": 8880,
        "path": "/v1/audio/speech",
        "text": {"in": "json", "field": "input"},
        "fields": {"model": "tts-1", "voice": "af_heart", "response_format": "wav"},
    },
    # Coqui TTS server (coqui-ai/TTS TTS/server/server.py @004a3de: @app.route("/api/tts",
    # methods=["GET"]), later also POST; text in the query string; send_file(...,
    # mimetype="audio/wav"), whole file; port 5002 on all interfaces. Multi-speaker models need
    # speaker_id (fields).
    "coqui": {
        "port": 5002,
        "method": "GET",
        "path": "/api/tts",
        "text": {"in": "query", "field": "text"},
    },
    # Piper's own server, `python -m piper.http_server` (piper-tts 1.5.0-1.8.0 wheels,
    # piper/http_server.py; OHF-Voice/piper1-gpl src/piper/http_server.py at 146d0a2): POST
    # /synthesize with a JSON object {"text", "voice", "speaker", "length_scale", ...}; the whole
    # WAV comes back as Flask's default text/html, so the type is not checked; bad input is a
    # 500 naming no field. piper-tts 1.3-1.4 served POST / instead: override path.
    # Measured and written down in images/piper-http/README.md.
    "piper_http": {
        "port": 5000,
        "path": "/synthesize",
        "answer": {"content_type": ""},
    },
    # GPT-SoVITS api_v2.py (RVC-Boss/GPT-SoVITS @0235857, TTS_Request, check_params): POST /tts
    # JSON; text, text_lang, ref_audio_path, prompt_lang required (a missing one is 400
    # {"message": "... is required"}); media_type wav by default, a complete WAV as audio/wav; a
    # failed synthesis is 400 {"message": "tts failed", "Exception": ...}. ref_audio_path must be a
    # file on the server: override it. It binds 127.0.0.1:9880 by default: start it with -a 0.0.0.0.
    "gpt_sovits": {
        "port": 9880,
        "path": "/tts",
        "fields": {"text_lang": "en", "ref_audio_path": "ref.wav", "prompt_lang": "en",
                   "media_type": "wav"},
    },
    # fish-speech tools/server/views.py (@5b2140c) and fish_speech/utils/schema.py ServeTTSRequest:
    # POST /v1/tts with application/json (or msgpack, multipart); only "text" is required (a
    # missing one is 422 naming it); format wav by default; streaming false gives a complete WAV.
    # It listens on 127.0.0.1:8080 unless started with --listen 0.0.0.0:8080; --api-key turns on
    # Bearer auth (auth.token).
    "fish_speech": {
        "port": 8080,
        "path": "/v1/tts",
        "fields": {"format": "wav", "streaming": False},
    },
    # CosyVoice runtime/python/fastapi/server.py (@1cfc5dd): @app.get("/inference_sft") with
    # Form() fields tts_text and spk_id (later copies also accept POST); its client.py sends the
    # form with GET; StreamingResponse of raw int16 PCM, no header, no media type, 22050 Hz
    # (client.py target_sr; CosyVoice2/3 models run at 24000 Hz: override answer.pcm.rate). spk_id
    # 英文女 exists only in CosyVoice-300M-SFT; an unknown speaker answers 200 with an empty body.
    "cosyvoice": {
        "port": 50000,
        "method": "GET",
        "path": "/inference_sft",
        "text": {"in": "multipart", "field": "tts_text"},
        "fields": {"spk_id": "英文女"},
        "answer": {"content_type": "", "format": "pcm",
                   "pcm": {"rate": 22050, "width": 2, "channels": 1}},
    },
}


class ContractError(ValueError):
    """An invalid API contract; ``field`` is its dotted path (e.g. ``text.in``)."""

    def __init__(self, field, detail):
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_contract(preset="reference", overrides=None, presets=None):
    """Merge a preset with field-by-field overrides and check the result.

    Returns a complete contract dict (every field present). Raises ContractError naming the
    field (``preset`` for an unknown preset name).
    """
    presets = PRESETS if presets is None else presets
    if not isinstance(preset, str) or preset not in presets:
        raise ContractError("preset", f"unknown preset {preset!r}; known: {', '.join(sorted(presets))}")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ContractError("(contract)", f"must be a mapping of fields, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(_CONTRACT_BASE))
    if unknown:
        raise ContractError(unknown[0], f"unknown contract field; known: {', '.join(sorted(_CONTRACT_BASE))}")
    contract = _merge(_merge(_CONTRACT_BASE, presets[preset]), overrides)
    contract["preset"] = preset
    return check_contract(contract)


def check_contract(contract):
    """Validate and normalise a resolved contract (as resolve_contract() returns it)."""
    if not isinstance(contract, dict):
        raise ContractError("(contract)", f"must be a mapping, got {type(contract).__name__}")
    contract = _merge(_CONTRACT_BASE, contract)
    port = contract["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ContractError("port", f"must be a TCP port (1-65535), got {port!r}")
    method = contract["method"]
    if not isinstance(method, str) or not _TOKEN_RE.fullmatch(method):
        raise ContractError("method", f"must be an HTTP method name, got {method!r}")
    contract["method"] = method.upper()
    path = contract["path"]
    if not isinstance(path, str) or not path.startswith("/") or re.search(r"[\s#]", path):
        raise ContractError("path", f"must be an absolute path such as /tts, got {path!r}")
    text = contract["text"]
    if not isinstance(text, dict) or text.get("in") not in TEXT_PLACEMENTS:
        placement = text.get("in") if isinstance(text, dict) else text
        raise ContractError("text.in", f"where the text travels must be one of"
                                       f" {', '.join(TEXT_PLACEMENTS)}, got {placement!r}")
    if text["in"] != "raw" and not (isinstance(text.get("field"), str) and text["field"]):
        raise ContractError("text.field", f"names the field that carries the text (text.in is"
                                          f" {text['in']}), got {text.get('field')!r}")
    # GET with a body is unusual but real (CosyVoice's own client sends its form with GET).
    if text["in"] != "query" and contract["method"] in ("HEAD", "OPTIONS"):
        raise ContractError("text.in", f"{text['in']} needs a request body, which"
                                       f" {contract['method']} does not carry; use query")
    fields = contract["fields"]
    if not isinstance(fields, dict):
        raise ContractError("fields", f"must be a mapping, got {type(fields).__name__}")
    if text["in"] in ("query", "form", "multipart"):
        for name, value in fields.items():
            if isinstance(value, (dict, list)):
                raise ContractError(f"fields.{name}", f"{text['in']} fields must be plain values")
    if text["in"] == "raw" and fields:
        raise ContractError("fields", "a raw text body has no room for extra fields")
    for name in ("headers",):
        _check_contract_headers(name, contract[name])
    _check_contract_headers("probe.headers", contract["probe"].get("headers", {}))
    auth = contract["auth"]
    token = auth.get("token") or ""
    if not isinstance(token, str):
        raise ContractError("auth.token", "must be a string (vault-encrypted)")
    if token and _PLACEHOLDER_TOKEN_RE.search(token.strip()):
        raise ContractError("auth.token", "is still a placeholder; set it from a vaulted variable")
    if token and not (isinstance(auth.get("header"), str) and _TOKEN_RE.fullmatch(auth["header"])):
        raise ContractError("auth.header", f"must be a header name, got {auth.get('header')!r}")
    answer = contract["answer"]
    statuses = answer.get("status")
    try:
        answer["status"] = list(_status_codes(statuses))
    except ProbeArgumentError:
        raise ContractError("answer.status", f"must be HTTP status codes, got {statuses!r}") from None
    if answer.get("content_type") is None:
        answer["content_type"] = ""
    if not isinstance(answer["content_type"], str):
        raise ContractError("answer.content_type", "must be a Content-Type prefix, or '' for none")
    if answer.get("format") not in AUDIO_FORMATS:
        raise ContractError("answer.format", f"must be one of {', '.join(AUDIO_FORMATS)},"
                                             f" got {answer.get('format')!r}")
    if answer["format"] == "pcm":
        pcm = answer.get("pcm") or {}
        for key, allowed in (("rate", None), ("width", (1, 2, 3, 4)), ("channels", None)):
            value = pcm.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
                    allowed and value not in allowed):
                raise ContractError(f"answer.pcm.{key}", f"must be a positive integer"
                                    f"{' in ' + str(allowed) if allowed else ''}, got {value!r}")
    probe_text = contract["probe"].get("text")
    if not isinstance(probe_text, str) or not probe_text.strip():
        raise ContractError("probe.text", f"must be a non-empty text, got {probe_text!r}")
    evidence = contract["evidence"]
    if bool(evidence.get("metrics_path")) != bool(evidence.get("metric")):
        raise ContractError("evidence", "metrics_path and metric go together")
    if evidence.get("metrics_path") and not str(evidence["metrics_path"]).startswith("/"):
        raise ContractError("evidence.metrics_path", "must be an absolute path such as /metrics")
    return contract


def _check_contract_headers(name, headers):
    if not isinstance(headers, dict):
        raise ContractError(name, f"must be a mapping of header names to values, got {type(headers).__name__}")
    try:
        _build_headers(headers, None)
    except ProbeArgumentError as exc:
        raise ContractError(name, exc.detail) from None


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_request(contract, text, probe_request=False):
    """The HTTP request that asks ``contract``'s server to speak ``text``.

    Returns a dict: method, target (path and query string), headers (a dict, the Content-Type
    included) and body (bytes or None). probe_request adds the contract's probe headers.
    """
    from urllib.parse import urlencode

    method = contract["method"]
    placement = contract["text"]["in"]
    field = contract["text"].get("field")
    values = dict(contract["fields"])
    if placement != "raw":
        values[field] = text
    target = contract["path"]
    body = None
    content_type = None
    if placement == "query":
        target += ("&" if "?" in target else "?") + urlencode(
            [(name, _scalar(value)) for name, value in values.items()])
    elif placement == "json":
        body = json.dumps(values).encode("utf-8")
        content_type = "application/json"
    elif placement == "form":
        body = urlencode([(name, _scalar(value)) for name, value in values.items()]).encode("utf-8")
        content_type = "application/x-www-form-urlencoded"
    elif placement == "multipart":
        boundary = _MULTIPART_BOUNDARY
        parts = []
        for name, value in values.items():
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                         f"{_scalar(value)}\r\n")
        parts.append(f"--{boundary}--\r\n")
        body = "".join(parts).encode("utf-8")
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = text.encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update({name: _scalar(value) for name, value in contract["headers"].items()})
    auth = contract["auth"]
    if auth.get("token"):
        scheme = auth.get("scheme") or ""
        headers[auth["header"]] = f"{scheme} {auth['token']}".strip()
    if probe_request:
        headers.update({name: _scalar(value) for name, value in contract["probe"]["headers"].items()})
    return {"method": method, "target": target, "headers": headers, "body": body}


def contract_probe_arguments(contract, base_url, text=None, probe_request=True):
    """probe() keyword arguments (url, method, payload, headers, expectations) for a contract."""
    request = build_request(contract, contract["probe"]["text"] if text is None else text,
                            probe_request=probe_request)
    answer = contract["answer"]
    return {
        "url": base_url.rstrip("/") + request["target"],
        "method": request["method"],
        "payload": request["body"] if request["body"] is not None else b"" if request["method"]
        not in _BODYLESS_METHODS else None,
        "headers": request["headers"],
        "expected_status": tuple(answer["status"]),
        "content_type_prefix": answer["content_type"] or None,
        "audio_format": answer["format"],
        "pcm": answer.get("pcm") if answer["format"] == "pcm" else None,
    }


def haproxy_check(contract):
    """HAProxy 2.6 `http-check send` and `expect` lines for the contract's probe request."""
    request = build_request(contract, contract["probe"]["text"], probe_request=True)
    words = ["meth", request["method"], "uri", _haproxy_quote(request["target"]), "ver", "HTTP/1.1",
             "hdr", "Host", "tts-ha-router", "hdr", "Cache-Control", "no-cache"]
    for name, value in request["headers"].items():
        words += ["hdr", name, _haproxy_quote(value)]
    if request["body"] is not None:
        words += ["body", _haproxy_quote(request["body"].decode("utf-8"))]
    expect = ["status " + ",".join(str(code) for code in contract["answer"]["status"])]
    if contract["answer"]["content_type"]:
        expect.append("hdr name content-type value -m beg "
                      + _haproxy_quote(contract["answer"]["content_type"]))
    return {"send": " ".join(words), "expect": expect}


def curl_example(contract, base_url, text="Hello from tts-ha", output="hello.wav"):
    """A curl command line that asks the contract's server to speak ``text`` (for summaries).

    An auth token is shown as $TTS_API_TOKEN, never in clear.
    """
    import shlex

    masked = _merge(contract, {"auth": {"token": "$TTS_API_TOKEN"}}) if contract["auth"].get("token") else contract
    request = build_request(masked, text)
    words = ["curl", "-sS", "-X", request["method"]]
    multipart = contract["text"]["in"] == "multipart"
    for name, value in request["headers"].items():
        if multipart and name == "Content-Type":
            continue  # curl -F writes its own boundary
        header = f"{name}: {value}"
        words += ["-H", f'"{header}"' if "$TTS_API_TOKEN" in header else shlex.quote(header)]
    if multipart:
        values = {**contract["fields"], contract["text"]["field"]: text}
        for name, value in values.items():
            words += ["-F", shlex.quote(f"{name}={_scalar(value)}")]
    elif request["body"] is not None:
        words += ["--data-binary", shlex.quote(request["body"].decode("utf-8"))]
    words += [shlex.quote(base_url.rstrip("/") + request["target"]), "-o", shlex.quote(output)]
    return " ".join(words)


def _haproxy_quote(value):
    """A double-quoted HAProxy config word: backslash escapes, no environment expansion."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
               .replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t"))
    return f'"{escaped}"'


# Answers that will not change by waiting for a model to load: the contract is wrong. Each names
# the contract field to fix. 400/422 count only when the body names a missing/required field.
_DEFINITIVE = {
    401: "auth.token (the server refused the credentials)",
    403: "auth.token (the server refused the credentials)",
    404: "path (the server has no such route)",
    405: "method (the route does not accept this method)",
    415: "text.in (the server does not accept this body type)",
    501: "method (the server does not implement it)",
}
_MISSING_FIELD_RE = re.compile(r"missing|required|field|not provided|must be provided", re.IGNORECASE)


def definitive_failure(status, body):
    """Contract field to fix when an answer is definitive, else None."""
    if status in _DEFINITIVE:
        return _DEFINITIVE[status]
    if status in (400, 422) and body and _MISSING_FIELD_RE.search(bytes(body[:2000]).decode("utf-8", "replace")):
        return "text.field / fields (the server says a field is missing)"
    return None


# --------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------

def _blank_result(url, reason, latency_ms=0.0):
    result = dict.fromkeys(_RESULT_KEYS)
    result.update(healthy=False, reason=reason, url=url, bytes=0, latency_ms=latency_ms, checks={})
    return result


def probe(url, method="POST", payload=None, headers=None, timeout=3.0, validate_certs=True,
          ca_path=None, client_cert=None, client_key=None, expected_status=(200,),
          content_type_prefix="audio/", min_duration_s=0.02, min_rms_dbfs=-60.0,
          max_latency_ms=None, max_bytes=DEFAULT_MAX_BYTES, instance_header="X-TTS-Instance",
          follow_redirects=False, audio_format="any", pcm=None):
    """Ask ``url`` to synthesise a tiny text and judge whether real audio came back.

    payload: None sends ``{"text": "a"}`` (nothing for GET/HEAD/OPTIONS); a dict or list is sent
    as JSON, str/bytes as the raw body. ``timeout`` bounds the whole probe (DNS, connect, TLS,
    request, every byte of the response, redirects). None disables min_duration_s, min_rms_dbfs,
    content_type_prefix and instance_header. Environment proxies are deliberately not used: the
    check must reach the instance itself.

    Returns a dict that always has healthy, reason ("ok" or what failed, with figures), url,
    status, content_type, bytes, latency_ms, audio_format, sample_rate, channels, duration_s,
    rms_dbfs, instance, checks and definitive. ``checks`` maps each check that was evaluated
    (request, status, content_type, audio, duration, rms, latency) to its outcome.
    ``definitive`` names the API contract field to fix when the answer cannot improve by waiting
    (404, 405, 501, a 400 naming a missing field...), else None. audio_format and pcm say what
    audio the contract promises (see analyze_audio()). Network and HTTP problems become
    ``healthy: False`` with a reason; only invalid arguments raise (ProbeArgumentError, a
    ValueError).
    """
    _check_url(url)
    if not isinstance(method, str) or not _TOKEN_RE.fullmatch(method):
        raise ProbeArgumentError("method", f"must be an HTTP method name, got {method!r}")
    method = method.upper()
    body, body_type = _encode_payload(method, payload)
    request_headers = _build_headers(headers, body_type)
    _check_number("timeout", timeout, 0, exclusive=True)
    expected = _status_codes(expected_status)
    _check_text("content_type_prefix", content_type_prefix)
    _check_text("instance_header", instance_header)
    if audio_format not in AUDIO_FORMATS:
        raise ProbeArgumentError("audio_format", f"must be one of {', '.join(AUDIO_FORMATS)}, got {audio_format!r}")
    _check_number("min_duration_s", min_duration_s, 0, optional=True)
    _check_number("min_rms_dbfs", min_rms_dbfs, optional=True)
    _check_number("max_latency_ms", max_latency_ms, 0, exclusive=True, optional=True)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ProbeArgumentError("max_bytes", f"must be a positive integer, got {max_bytes!r}")
    tls = (validate_certs, ca_path, client_cert, client_key)
    # Build the TLS context up front when it may be needed, so bad TLS options are argument
    # errors; a plain-HTTP probe only builds one if redirected to https.
    eager_tls = urlsplit(url).scheme == "https" or any(tls[1:])
    started = time.monotonic()
    exchange = _Exchange(started + timeout, _ssl_context(*tls) if eager_tls else None)
    failure = None
    try:
        _follow(exchange, url, method, body, request_headers, max_bytes, follow_redirects, tls)
    except ProbeArgumentError:
        raise
    except (_Failure, OSError, http.client.HTTPException, ValueError) as exc:
        # ValueError: http.client raises it for malformed chunked bodies.
        failure = _describe_failure(exc, exchange, timeout)

    result = _blank_result(url, failure, round((time.monotonic() - started) * 1000.0, 1))
    result.update(status=exchange.status, bytes=exchange.received)
    if exchange.headers is not None:
        result["content_type"] = exchange.headers.get("Content-Type")
        if instance_header:
            result["instance"] = exchange.headers.get(instance_header)
    result["checks"]["request"] = failure is None
    if failure is None:
        problems = _evaluate(result, exchange, expected, content_type_prefix, min_duration_s,
                             min_rms_dbfs, max_latency_ms, audio_format, pcm)
        result["healthy"] = not problems
        result["reason"] = "; ".join(problems) or "ok"
    return result


def _evaluate(result, exchange, expected, content_type_prefix, min_duration_s, min_rms_dbfs,
              max_latency_ms, audio_format="any", pcm=None):
    """Run the response checks, record them in result["checks"] and return the problems."""
    checks = result["checks"]
    status = exchange.status
    checks["status"] = status in expected
    if not checks["status"]:
        # An error or redirect body is not meant to be audio: analysing it would only add noise.
        if status in _REDIRECT_STATUSES:
            location = exchange.headers.get("Location")
            return [f"redirect {status} to {location!r} not followed (follow_redirects is off)"]
        shown = f" (body {_preview(exchange.body)})" if exchange.body else ""
        result["definitive"] = definitive_failure(status, exchange.body)
        fix = f"; will not improve by waiting: check the API contract's {result['definitive']}" \
            if result["definitive"] else ""
        return [f"status {status} not in expected {list(expected)}{shown}{fix}"]

    problems = []
    if content_type_prefix:
        content_type = result["content_type"] or ""
        checks["content_type"] = content_type.lower().startswith(content_type_prefix.lower())
        if not checks["content_type"]:
            problems.append(f"content type {result['content_type']!r} does not start with"
                            f" {content_type_prefix!r}")
    audio = analyze_audio(exchange.body, audio_format, pcm)
    result.update(audio_format=audio["format"], sample_rate=audio["sample_rate"],
                  channels=audio["channels"], duration_s=audio["duration_s"],
                  rms_dbfs=audio["rms_dbfs"])
    checks["audio"] = audio["error"] is None
    if audio["error"]:
        problems.append(audio["error"])
    else:
        # Only WAV is measured; MP3/OGG/FLAC pass on recognition alone.
        if min_duration_s is not None and audio["duration_s"] is not None:
            checks["duration"] = audio["duration_s"] >= min_duration_s
            if not checks["duration"]:
                problems.append(f"audio too short: {audio['duration_s']:g} s < min_duration"
                                f" {min_duration_s:g} s")
        if min_rms_dbfs is not None and audio["rms_dbfs"] is not None:
            checks["rms"] = audio["rms_dbfs"] >= min_rms_dbfs
            if not checks["rms"]:
                problems.append(f"audio is silent: rms {audio['rms_dbfs']:.1f} dBFS < min_rms_dbfs"
                                f" {min_rms_dbfs:g} dBFS")
    if max_latency_ms is not None:
        checks["latency"] = result["latency_ms"] <= max_latency_ms
        if not checks["latency"]:
            problems.append(f"latency {result['latency_ms']:.1f} ms > max_latency_ms {max_latency_ms:g}")
    return problems


# --------------------------------------------------------------------------------------------
# Busy but speaking: evidence that real syntheses are being answered
# --------------------------------------------------------------------------------------------
# A server without a probe lane queues the probe behind real requests, so under saturating load
# a probe can time out while the server answers every real request. Evidence of real answers
# comes from a counter sampled at every check: HAProxy's count of 2xx answers (the router's
# passive observation of client traffic) or the server's own Prometheus counter of audio
# served. A hung or crashed server answers nothing, so its counter stands still.

EVIDENCE_WINDOW_S = 5.0
_EVIDENCE_SAMPLES = 64


def _http_get_text(url, timeout):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": "tts-ha-probe", "Connection": "close"})
        response = conn.getresponse()
        body = response.read(4 * 1024 * 1024)
        if response.status != 200:
            raise OSError(f"{url} answered {response.status}")
        return body.decode("utf-8", "replace")
    finally:
        conn.close()


def read_counter(kind, url, metric=None, timeout=0.5):
    """Current value of an evidence counter, or None when it cannot be read.

    kind "haproxy": url is HAProxy's stats page in CSV (e.g. http://127.0.0.1:8404/;csv); the
    value is the 2xx answers of its frontends. kind "metrics": url is a Prometheus text page;
    the value sums every sample of ``metric`` (labels ignored).
    """
    try:
        text = _http_get_text(url, timeout)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return counter_from_text(kind, text, metric)


def counter_from_text(kind, text, metric=None):
    """The evidence counter in a page already fetched (read_counter's rules), or None."""
    total = 0.0
    found = False
    if kind == "haproxy":
        lines = text.splitlines()
        if not lines or not lines[0].startswith("# "):
            return None
        header = lines[0][2:].split(",")
        try:
            col_sv, col_2xx = header.index("svname"), header.index("hrsp_2xx")
        except ValueError:
            return None
        for line in lines[1:]:
            cells = line.split(",")
            if len(cells) > col_2xx and cells[col_sv] == "FRONTEND" and cells[col_2xx].isdigit():
                total += int(cells[col_2xx])
                found = True
    else:
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(metric):
                continue
            name, _sep, rest = line.partition(" ")
            if name.split("{", 1)[0] != metric.split("{", 1)[0]:
                continue
            if "{" in metric and not name.startswith(metric.rstrip("}")):
                continue
            try:
                total += float(rest.split()[0])
                found = True
            except (IndexError, ValueError):
                continue
    return total if found else None


def record_evidence(state_file, value, now=None, window_s=EVIDENCE_WINDOW_S):
    """Store a counter sample; return the seconds since the counter last grew (None: unknown)."""
    now = time.time() if now is None else now
    try:
        with open(state_file, encoding="utf-8") as handle:
            samples = json.load(handle)
        if not isinstance(samples, list):
            samples = []
    except (OSError, ValueError):
        samples = []
    samples = [s for s in samples if isinstance(s, list) and len(s) == 2
               and now - 10 * window_s <= s[0] <= now][-_EVIDENCE_SAMPLES:]
    since = None
    if value is not None:
        # The counter grew between two consecutive samples at most `since` seconds ago.
        previous = None
        for stamp, old in samples + [[now, value]]:
            if previous is not None and old > previous[1]:
                since = now - previous[0]
            previous = [stamp, old]
        samples.append([now, value])
    try:
        tmp = f"{state_file}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(samples, handle)
        os.replace(tmp, state_file)
    except OSError:
        pass
    return since


def is_busy_not_broken(result):
    """A failed probe that a busy server explains: it accepted and then queued (or refused with
    503/429). Refused or reset connections, wrong answers and bad audio are never 'busy'."""
    if result["healthy"]:
        return False
    if result["status"] in (429, 503):
        return True
    reason = result["reason"] or ""
    return reason.startswith("timed out") and (
        "waiting for response headers" in reason or "reading the body" in reason
        or "sending the request" in reason)


# --------------------------------------------------------------------------------------------
# CLI (Keepalived vrrp_script, image HEALTHCHECK)
# --------------------------------------------------------------------------------------------

_PROBE_DEFAULTS = {name: param.default for name, param in inspect.signature(probe).parameters.items()}
# CLI flags whose name is not simply "--" + the probe() parameter with dashes.
_CLI_FLAGS = {"min_duration_s": "--min-duration", "headers": "--header",
              "payload": "--text/--payload-json", "validate_certs": "--insecure"}
# Options of the CLI itself (contract and busy evidence), not probe() arguments.
_CLI_OWN = ("api_file", "evidence_url", "evidence_kind", "evidence_metric", "evidence_state",
            "busy_window")
# Beyond the probe's own deadline, so that a hang nothing else catches still ends the process.
_WATCHDOG_GRACE_S = 1.0


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse would print usage text and exit 2; the check must print its JSON line instead.
        raise _UsageError(message)


def _cli_parser():
    defaults = _PROBE_DEFAULTS
    # SUPPRESS: options not given are left out, so probe() applies its own defaults.
    parser = _Parser(prog="tts-synthesis-check", argument_default=argparse.SUPPRESS,
                     description="Ask a TTS endpoint to synthesise a tiny text and check that real"
                                 " audio comes back. Prints one JSON line; exit 0 healthy,"
                                 " 1 unhealthy, 2 bad arguments.")
    parser.add_argument("--url", required=True, help="synthesis endpoint (http:// or https://);"
                        " with --api-file, the server's base URL (the contract adds the path)")
    parser.add_argument("--api-file", help="API contract (JSON, as resolve_contract() returns it):"
                        " method, path, text placement, headers and the expected answer")
    parser.add_argument("--evidence-url", help="counter showing real answers, read at every check:"
                        " HAProxy stats CSV or a Prometheus page (default: the contract's"
                        " evidence.metrics_path on --url)")
    parser.add_argument("--evidence-kind", choices=("haproxy", "metrics"), help="what"
                        " --evidence-url serves (default metrics)")
    parser.add_argument("--evidence-metric", help="Prometheus counter for --evidence-kind metrics")
    parser.add_argument("--evidence-state", help="file keeping counter samples between checks")
    parser.add_argument("--busy-window", type=float, help="a probe that a busy server explains"
                        " (timeout, 503) passes while the counter grew this recently (default"
                        f" {EVIDENCE_WINDOW_S:g} s); only for servers without a probe lane")
    parser.add_argument("--method", help=f"HTTP method (default {defaults['method']})")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--text", help='text to synthesise, sent as {"text": TEXT} (default "a")')
    body.add_argument("--payload-json", help="request body: a JSON object or array")
    parser.add_argument("--header", dest="headers", action="append", metavar="NAME:VALUE",
                        help="extra request header (repeatable)")
    parser.add_argument("--timeout", type=float,
                        help=f"seconds for the whole probe (default {defaults['timeout']:g}); a"
                             f" watchdog ends the process {_WATCHDOG_GRACE_S:g} s later")
    parser.add_argument("--expected-status", type=int, action="append", metavar="CODE",
                        help="acceptable HTTP status (repeatable; default 200)")
    parser.add_argument("--content-type-prefix",
                        help=f"required Content-Type prefix (default {defaults['content_type_prefix']})")
    parser.add_argument("--min-duration", dest="min_duration_s", type=float, metavar="SECONDS",
                        help=f"shortest acceptable WAV audio (default {defaults['min_duration_s']:g})")
    parser.add_argument("--min-rms-dbfs", type=float,
                        help=f"quietest acceptable WAV RMS level (default {defaults['min_rms_dbfs']:g})")
    parser.add_argument("--max-latency-ms", type=float, help="slowest acceptable total time")
    parser.add_argument("--max-bytes", type=int,
                        help=f"largest acceptable body (default {defaults['max_bytes']})")
    parser.add_argument("--instance-header",
                        help=f"response header naming the instance (default {defaults['instance_header']})")
    parser.add_argument("--follow-redirects", action="store_true", help="follow up to"
                        f" {MAX_REDIRECTS} redirects (default: a redirect is unhealthy)")
    parser.add_argument("--insecure", dest="validate_certs", action="store_false",
                        help="do not verify the TLS certificate")
    parser.add_argument("--ca-path", help="CA bundle file or directory for TLS verification")
    parser.add_argument("--client-cert", help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--client-key", help="client key (PEM), if not inside --client-cert")
    return parser


def _cli_options(argv):
    """Parsed CLI arguments as probe() keyword arguments."""
    options = vars(_cli_parser().parse_args(argv))
    text = options.pop("text", None)
    payload_json = options.pop("payload_json", None)
    if text is not None:
        options["payload"] = {"text": text}
    elif payload_json is not None:
        try:
            options["payload"] = json.loads(payload_json)
        except ValueError as exc:
            raise _UsageError(f"argument --payload-json: invalid JSON: {exc}") from None
        if not isinstance(options["payload"], (dict, list)):
            raise _UsageError("argument --payload-json: must be a JSON object or array")
    if "headers" in options:
        headers = {}
        for item in options["headers"]:
            name, colon, value = item.partition(":")
            if not colon or not name.strip():
                raise _UsageError(f"argument --header: expected NAME:VALUE, got {item!r}")
            headers[name.strip()] = value.strip()
        options["headers"] = headers
    own = {name: options.pop(name) for name in _CLI_OWN if name in options}
    if "api_file" in own:
        own["contract"] = _load_contract(own.pop("api_file"))
        if payload_json is not None:
            raise _UsageError("argument --payload-json: the request body comes from --api-file")
        if "method" in options:
            raise _UsageError("argument --method: the method comes from --api-file")
        text = options.pop("payload", {}).get("text") if text is not None else None
        contract_args = contract_probe_arguments(own["contract"], options["url"], text)
        if "headers" in options:
            contract_args["headers"].update(options.pop("headers"))
        options = {**options, **contract_args}
    return options, own


def _load_contract(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return check_contract(json.load(handle))
    except OSError as exc:
        raise _UsageError(f"argument --api-file: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise _UsageError(f"argument --api-file: {path}: {exc}") from None


def _apply_evidence(result, own, base_url):
    """Sample the evidence counter; let a busy-but-speaking server pass (see is_busy_not_broken)."""
    contract = own.get("contract")
    url = own.get("evidence_url")
    kind = own.get("evidence_kind", "metrics")
    metric = own.get("evidence_metric")
    if url is None and contract and contract["evidence"]["metrics_path"]:
        parts = urlsplit(base_url)
        url = f"{parts.scheme}://{parts.netloc}{contract['evidence']['metrics_path']}"
        metric = metric or contract["evidence"]["metric"]
    if not url or "evidence_state" not in own:
        return
    window = own.get("busy_window", EVIDENCE_WINDOW_S)
    value = read_counter(kind, url, metric)
    since = record_evidence(own["evidence_state"], value, window_s=window)
    lane = bool(contract and contract["probe"].get("lane"))
    result["evidence"] = {"kind": kind, "value": value,
                          "grew_s_ago": None if since is None else round(since, 2)}
    if not lane and is_busy_not_broken(result) and since is not None and since <= window:
        result["healthy"] = True
        result["busy"] = True
        result["reason"] = (f"busy but speaking: {kind} counter grew {since:.1f} s ago"
                            f" (probe: {result['reason']})")


def _emit(result):
    print(json.dumps(result), flush=True)


def _start_watchdog(timeout, url, output_lock):
    """Arm a timer that reports and ends the process if the probe overruns its timeout."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        return None  # probe() rejects such a timeout before doing any I/O
    limit = timeout + _WATCHDOG_GRACE_S
    started = time.monotonic()

    def expire():
        if output_lock.acquire(blocking=False):
            elapsed_ms = round((time.monotonic() - started) * 1000.0, 1)
            _emit(_blank_result(url, f"hard deadline of {limit:g} s exceeded", elapsed_ms))
            os._exit(1)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv=None):
    """CLI entry point: print one JSON result line; exit 0 healthy, 1 unhealthy, 2 bad arguments."""
    try:
        options, own = _cli_options(argv)
    except _UsageError as exc:
        _emit(_blank_result(None, f"invalid arguments: {exc}"))
        return 2
    url = options["url"]
    output_lock = threading.Lock()
    watchdog = _start_watchdog(options.get("timeout", _PROBE_DEFAULTS["timeout"]), url, output_lock)
    try:
        result = probe(**options)
        _apply_evidence(result, own, url)
        code = 0 if result["healthy"] else 1
    except ProbeArgumentError as exc:
        flag = _CLI_FLAGS.get(exc.argument, "--" + exc.argument.replace("_", "-"))
        result = _blank_result(url, f"invalid argument {flag}: {exc.detail}")
        code = 2
    except Exception as exc:  # noqa: BLE001 - a probe bug must still yield a verdict Keepalived can read
        import traceback
        traceback.print_exc()
        result = _blank_result(url, f"internal error: {exc.__class__.__name__}: {exc}")
        code = 1
    if watchdog is not None:
        watchdog.cancel()
    if not output_lock.acquire(blocking=False):
        threading.Event().wait()  # the watchdog is printing its verdict and ending the process
    _emit(result)
    return code


if __name__ == "__main__":
    sys.exit(main())
