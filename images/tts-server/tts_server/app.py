"""HTTP service: routing, validation, probes, metrics, fault injection, graceful drain."""

from __future__ import annotations

import json
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

from . import __version__, config, faults, wav, webui
from .admission import Admission, QueueFull
from .cache import AudioCache
from .engines import OPENAI_VOICES, EngineError, EspeakEngine, PiperEngine, build_voicebook
from .metrics import Registry

MIN_SPEED, MAX_SPEED = 0.5, 2.0
SPEECH_FORMATS = ("wav", "pcm")
KNOWN_PATHS = ("/", "/health", "/ready", "/metrics", "/voices", "/tts", "/v1/audio/speech")
ROUTES = {
    "/": ("GET", "HEAD"),
    "/health": ("GET", "HEAD"),
    "/ready": ("GET", "HEAD"),
    "/metrics": ("GET", "HEAD"),
    "/voices": ("GET", "HEAD"),
    "/tts": ("POST",),
    "/v1/audio/speech": ("POST",),
}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Log:
    """One JSON object per line on stderr."""

    def __init__(self, instance: str, stream=None) -> None:
        self.instance = instance
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        rec = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            "instance": self.instance,
        }
        rec.update(fields)
        line = json.dumps(rec, separators=(",", ":"), default=str)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.close = close


class Service:
    """Process-wide state shared by all handler threads."""

    def __init__(self, settings: config.Settings, log: Optional[_Log] = None) -> None:
        self.s = settings
        self.log = log or _Log(settings.instance)
        self.started = time.time()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.draining = False
        self.fatal: Optional[str] = None
        self.exit_code = 0
        self.load_seconds: Optional[float] = None
        self.warmup_seconds: Optional[float] = None
        self.not_ready_reason = "loading model"
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._idle = threading.Condition(self._inflight_lock)

        self.piper = PiperEngine(settings.model_path, settings.use_cuda, config.onnx_threads_for(settings))
        self.espeak = EspeakEngine(settings.espeak_bin)
        self.voices = build_voicebook(self.piper, self.espeak)
        self.cache = AudioCache(settings.cache_max_entries, settings.cache_max_bytes) if settings.cache_enabled else None
        self.admission = Admission(settings.concurrency, settings.queue_max, settings.queue_timeout,
                                   settings.probe_lane)
        self.faults = faults.FaultFile(
            settings.fault_file,
            on_invalid=lambda v: self.log("fault_file_invalid", level="warning", value=v[:64],
                                          allowed=list(faults.MODES)),
        )
        self.webui_page = webui.render(settings.instance, __version__, settings.max_text_chars)
        self._init_metrics()

    # ---- metrics -------------------------------------------------------------------------
    def _init_metrics(self) -> None:
        r = self.registry = Registry()
        self.m_requests = r.counter("tts_http_requests_total", "HTTP requests by path, method and status.")
        self.m_latency = r.histogram("tts_http_request_duration_seconds",
                                     "HTTP request latency by path.", LATENCY_BUCKETS)
        self.m_synth = r.histogram("tts_synthesis_duration_seconds",
                                   "Engine synthesis time (cache misses only) by voice.", LATENCY_BUCKETS)
        self.m_synth_total = r.counter("tts_synthesis_seconds_total", "Total seconds spent synthesizing, by voice.")
        self.m_audio = r.counter("tts_audio_seconds_total", "Seconds of audio produced (served), by voice.")
        self.m_chars = r.counter("tts_characters_total", "Characters synthesized (cache misses), by voice.")
        self.m_rejected = r.counter("tts_queue_rejections_total", "Requests rejected with 503 because the queue was full.")
        self.m_abandoned = r.counter("tts_abandoned_total",
                                     "Queued requests dropped unsynthesised: their client had closed the connection.")
        self.m_faults = r.counter("tts_fault_injections_total", "Synthesis requests answered by an injected fault.")
        self.m_errors = r.counter("tts_synthesis_errors_total", "Engine failures by voice.")
        r.gauge("tts_queue_depth", "Requests waiting for a synthesis worker.",
                lambda: [({}, self.admission.waiting)])
        r.gauge("tts_inflight_synthesis", "Synthesis jobs running now.", lambda: [({}, self.admission.active)])
        r.gauge("tts_inflight_requests", "HTTP requests being handled now.", lambda: [({}, self._inflight)])
        r.gauge("tts_synthesis_workers", "Configured synthesis workers (TTS_CONCURRENCY).",
                lambda: [({}, self.s.concurrency)])
        r.gauge("tts_queue_max", "Configured wait queue bound (TTS_QUEUE_MAX).", lambda: [({}, self.s.queue_max)])

        def cache_stat(key: str):
            return lambda: [({}, self.cache.stats()[key] if self.cache else 0)]

        r.gauge("tts_cache_hits_total", "Audio cache hits.", cache_stat("hits")).kind = "counter"
        r.gauge("tts_cache_misses_total", "Audio cache misses.", cache_stat("misses")).kind = "counter"
        r.gauge("tts_cache_evictions_total", "Audio cache evictions.", cache_stat("evictions")).kind = "counter"
        r.gauge("tts_cache_entries", "Entries in the audio cache.", cache_stat("entries"))
        r.gauge("tts_cache_bytes", "Bytes held by the audio cache.", cache_stat("bytes"))
        r.gauge("tts_cache_enabled", "1 when the audio cache is on.", lambda: [({}, 1 if self.cache else 0)])
        r.gauge("tts_ready", "1 once the model is loaded and warmed up.",
                lambda: [({}, 1 if self.is_ready() else 0)])
        r.gauge("tts_webui_enabled", "1 when the WebUI is served at /.", lambda: [({}, 1 if self.s.enable_webui else 0)])
        r.gauge("tts_fault_mode", "Active fault injection mode (1 for the active one).",
                lambda: [({"mode": m}, 1 if m == self.faults.mode() else 0) for m in faults.MODES])
        r.gauge("tts_info", "Build and configuration info.", lambda: [({
            "instance": self.s.instance,
            "version": __version__,
            "webui": str(self.s.enable_webui).lower(),
            "cache": str(self.cache is not None).lower(),
            "providers": ",".join(self.piper.providers),
            "concurrency": str(self.s.concurrency),
        }, 1)])
        r.gauge("tts_process_start_time_seconds", "Process start (unix seconds).", lambda: [({}, self.started)])
        r.gauge("tts_voice_available", "1 when a voice can synthesize.",
                lambda: [({"voice": v.id, "engine": v.engine.name}, 1 if v.available else 0)
                         for v in self.voices.voices.values()])

    # ---- lifecycle -----------------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining

    def load_and_warm(self) -> None:
        t0 = time.monotonic()
        try:
            self.piper.load()
            self.load_seconds = time.monotonic() - t0
            self.log("model_loaded", model=self.piper.model_path, providers=self.piper.providers,
                     onnx_threads=self.piper.threads, seconds=round(self.load_seconds, 3))
            self.not_ready_reason = "warming up"
            t1 = time.monotonic()
            for text in ("a", "Warming up the voice."):
                pcm, _ = self.piper.synthesize(text)
                if not pcm:
                    raise EngineError(f"warm-up synthesis of {text!r} produced no audio")
            self.voices.voices["joe"].available = True
        except Exception as exc:  # noqa: BLE001 - any failure here is fatal for the process
            self.fatal = f"piper voice failed to load: {exc}"
            self.not_ready_reason = self.fatal
            self.voices.voices["joe"].error = str(exc)
            self.log("model_load_failed", level="error", error=str(exc))
            self.exit_code = 3
            self.stop.set()
            return
        try:
            self.espeak.load()
            pcm, _ = self.espeak.synthesize("ready")
            if not pcm:
                raise EngineError("espeak-ng warm-up produced no audio")
            self.voices.voices["espeak"].available = True
        except EngineError as exc:
            self.voices.voices["espeak"].error = str(exc)
            self.log("voice_unavailable", level="warning", voice="espeak", error=str(exc))
        self.warmup_seconds = time.monotonic() - t1
        self.ready.set()
        self.not_ready_reason = ""
        self.log("ready", warmup_seconds=round(self.warmup_seconds, 3),
                 voices=[v.id for v in self.voices.voices.values() if v.available])

    def enter(self) -> None:
        with self._inflight_lock:
            self._inflight += 1

    def leave(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1
            if self._inflight <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._inflight_lock:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.25))
        return True

    def ready_details(self) -> Dict[str, Any]:
        return {
            "ready": self.is_ready(),
            "instance": self.s.instance,
            "version": __version__,
            "model": os.path.basename(self.piper.model_path or ""),
            "providers": self.piper.providers,
            "voices": [v.id for v in self.voices.voices.values() if v.available],
            "default_voice": self.voices.default,
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            "warmup_seconds": None if self.warmup_seconds is None else round(self.warmup_seconds, 3),
            "webui": self.s.enable_webui,
            "cache": self.cache is not None,
            "concurrency": self.s.concurrency,
            "queue_max": self.s.queue_max,
            "queue_depth": self.admission.waiting,
            "inflight": self.admission.active,
            "fault": self.faults.mode(),
            "uptime_seconds": round(time.time() - self.started, 3),
            **({"reason": self.not_ready_reason} if not self.is_ready() else {}),
        }

    # ---- synthesis -----------------------------------------------------------------------
    def synthesize(self, voice, text: str, speed: float, use_cache: bool, info: Dict[str, Any],
                   probe: bool = False, client_gone: Optional[Callable[[], bool]] = None) -> Tuple[bytes, int]:
        key = (voice.id, speed, text)
        if self.cache is not None:
            if use_cache:
                hit = self.cache.get(key)
                if hit is not None:
                    info["cache"] = "hit"
                    return hit[0], hit[1]
            info["cache"] = "miss"
        else:
            info["cache"] = "off"
        if not voice.available:
            raise ApiError(503, f"voice {voice.id!r} is not available: {voice.error or 'not loaded'}",
                           "voice", {"Retry-After": "5"})
        try:
            with self.admission.slot(probe=probe and len(text) <= self.s.probe_max_chars):
                # A request whose client gave up while it queued (a client timeout) would only
                # delay the ones behind it: after an outage the backlog could never drain.
                if client_gone is not None and client_gone():
                    self.m_abandoned.inc()
                    raise ApiError(499, "client closed the connection while the request waited", close=True)
                if self.faults.mode() == "slow":
                    info["fault"] = "slow"
                    self.m_faults.inc(mode="slow")
                    self.stop.wait(self.s.fault_slow_seconds)
                t0 = time.perf_counter()
                try:
                    pcm, rate = voice.engine.synthesize(text, speed)
                except EngineError as exc:
                    self.m_errors.inc(voice=voice.id)
                    raise ApiError(500, f"synthesis failed: {exc}") from exc
                dt = time.perf_counter() - t0
        except QueueFull as full:
            self.m_rejected.inc()
            raise ApiError(503, f"server busy: {full.reason}; retry later", None,
                           {"Retry-After": str(full.retry_after)}) from None
        info["synth_ms"] = round(dt * 1000, 2)
        self.m_synth.observe(dt, voice=voice.id)
        self.m_synth_total.inc(dt, voice=voice.id)
        self.m_chars.inc(len(text), voice=voice.id)
        if not pcm:
            raise ApiError(422, "text produced no audio (nothing pronounceable)", "text")
        if self.cache is not None:
            self.cache.put(key, pcm, rate)
        return pcm, rate


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"tts-server/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True
    service: Service  # set on the subclass built by make_server

    # ---- plumbing ------------------------------------------------------------------------
    def setup(self) -> None:
        self.timeout = self.service.s.keepalive_timeout
        super().setup()

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self.send_header("X-TTS-Instance", self.service.s.instance)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # replaced by one JSON line per request (see _finish)

    def log_request(self, code="-", size="-") -> None:
        pass

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors raised by http.server itself (malformed request line, unsupported method...)."""
        if self._t0 is None:
            self._t0 = time.perf_counter()
        if self._path is None:
            self._path = (getattr(self, "path", None) or "-").split("?", 1)[0]
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # always answer with a status line and headers
        msg = message or self.responses.get(code, ("error",))[0]
        self._json(code, {"error": msg, "field": None})
        self._finish(code)

    def handle_one_request(self) -> None:
        # per-request state; keep-alive connections reuse this handler object
        self._t0: Optional[float] = None
        self._info: Dict[str, Any] = {}
        self._path: Optional[str] = None
        self._bytes_out = 0
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok and self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        return ok

    def handle_expect_100(self) -> bool:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.service.s.max_body_bytes:
            return True  # answer 413 straight away instead of inviting the body
        return super().handle_expect_100()

    def _send(self, status: int, body: bytes, ctype: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection and not self._client_asked_close():
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        self._bytes_out = len(body)

    def _client_asked_close(self) -> bool:
        """The client already knows the connection ends (it sent Connection: close or is HTTP/1.0)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        tokens = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
        if self.request_version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens

    def _json(self, status: int, obj: Any, extra: Optional[Dict[str, str]] = None) -> None:
        body = (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")
        self._send(status, body, "application/json", extra)

    def _finish(self, status: int) -> None:
        svc = self.service
        dt = time.perf_counter() - self._t0
        path = self._path if getattr(self, "_path", None) in KNOWN_PATHS else "other"
        method = self.command if self.command in ("GET", "HEAD", "POST") else "other"
        svc.m_requests.inc(path=path, method=method, status=str(status))
        svc.m_latency.observe(dt, path=path)
        rec = {"method": self.command, "path": getattr(self, "_path", None) or "-", "status": status,
               "ms": round(dt * 1000, 2), "bytes": getattr(self, "_bytes_out", 0),
               "client": self.client_address[0] if self.client_address else None}
        rec.update(self._info)
        svc.log("request", level="info" if status < 500 else "error", **rec)

    # ---- dispatch ------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        svc = self.service
        self._t0 = time.perf_counter()
        self._info: Dict[str, Any] = {}
        self._bytes_out = 0
        self._path = self.path.split("?", 1)[0].split("#", 1)[0]
        if len(self._path) > 1:
            self._path = self._path.rstrip("/") or "/"
        svc.enter()
        status = 500
        try:
            status = self._route()
        except ApiError as err:
            status = err.status
            if err.close:
                self.close_connection = True
            self._info.setdefault("error", err.message)
            self._json(err.status, {"error": err.message, "field": err.field}, extra=err.headers)
        except Exception as exc:  # noqa: BLE001 - never let a bug kill the connection silently
            status = 500
            self.close_connection = True
            self._info["error"] = f"internal error: {exc.__class__.__name__}: {exc}"
            try:
                self._json(500, {"error": "internal server error", "field": None})
            except OSError:
                pass
        finally:
            if svc.draining:
                self.close_connection = True
            svc.leave()
            self._finish(status)

    def _route(self) -> int:
        svc = self.service
        path = self._path
        allowed = ROUTES.get(path)
        if allowed is None:
            raise ApiError(404, f"unknown path {path}", None)
        if self.command not in allowed:
            raise ApiError(405, f"method {self.command} not allowed on {path}; use {', '.join(allowed)}",
                           None, {"Allow": ", ".join(allowed)})
        if svc.draining:
            self.close_connection = True
            raise ApiError(503, "server is shutting down", None, {"Retry-After": "1"})
        if path == "/health":
            self._json(200, {"status": "ok", "instance": svc.s.instance,
                             "uptime_seconds": round(time.time() - svc.started, 3)})
            return 200
        if path == "/ready":
            details = svc.ready_details()
            if details["ready"]:
                self._json(200, details)
                return 200
            self._json(503, details, extra={"Retry-After": "1"})
            return 503
        if path == "/metrics":
            body = svc.registry.render().encode("utf-8")
            self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
            return 200
        if path == "/voices":
            self._json(200, {
                "default": svc.voices.default,
                "voices": [v.info() for v in svc.voices.voices.values()],
                "openai_voices": {name: svc.voices.default for name in OPENAI_VOICES},
            })
            return 200
        if path == "/":
            if not svc.s.enable_webui:
                raise ApiError(404, "WebUI is disabled on this instance (ENABLE_WEBUI=false); use POST /tts", None)
            self._send(200, svc.webui_page, "text/html; charset=utf-8",
                       {"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                        "script-src 'unsafe-inline'; media-src 'self' blob:"})
            return 200
        return self._speech(openai=(path == "/v1/audio/speech"))

    # ---- synthesis endpoints -------------------------------------------------------------
    def _read_json(self) -> Dict[str, Any]:
        s = self.service.s
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "chunked request bodies are not supported; send Content-Length", None, close=True)
        raw_len = self.headers.get("Content-Length")
        if raw_len is None:
            raise ApiError(411, "Content-Length header required", None, close=True)
        try:
            length = int(raw_len)
            if length < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, f"invalid Content-Length {raw_len!r}", None, close=True) from None
        if length > s.max_body_bytes:
            raise ApiError(413, f"request body of {length} bytes exceeds {s.max_body_bytes} bytes", None, close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ApiError(400, "request body shorter than Content-Length", None, close=True)
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
            raise ApiError(415, f"Content-Type must be application/json (got {ctype or 'none'!r})", None)
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}", None) from None
        if not isinstance(obj, dict):
            raise ApiError(400, "request body must be a JSON object", None)
        return obj

    def _speech(self, openai: bool) -> int:
        svc = self.service
        s = svc.s
        req = self._read_json()
        text_field = "input" if openai else "text"
        text = req.get(text_field)
        if text is None:
            raise ApiError(400, f"missing required field {text_field!r}", text_field)
        if not isinstance(text, str):
            raise ApiError(400, f"{text_field!r} must be a string", text_field)
        if not text.strip():
            raise ApiError(400, f"{text_field!r} is empty or whitespace", text_field)
        if len(text) > s.max_text_chars:
            raise ApiError(400, f"{text_field!r} has {len(text)} characters; the limit is {s.max_text_chars}",
                           text_field)
        voice_name = req.get("voice")
        if voice_name is not None and not isinstance(voice_name, str):
            raise ApiError(400, "'voice' must be a string", "voice")
        voice = svc.voices.resolve(voice_name, openai=openai)
        if voice is None:
            names = ", ".join(svc.voices.names() + (list(OPENAI_VOICES) if openai else []))
            raise ApiError(400, f"unknown voice {voice_name!r}; known: {names}", "voice")
        speed = req.get("speed", 1.0)
        if speed is None:
            speed = 1.0
        if not _is_number(speed) or not math.isfinite(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
            raise ApiError(400, f"'speed' must be a number between {MIN_SPEED} and {MAX_SPEED} (got {speed!r})",
                           "speed")
        speed = round(float(speed), 3)
        fmt = "wav"
        if openai:
            fmt = req.get("response_format") or "wav"
            if not isinstance(fmt, str) or fmt.lower() not in SPEECH_FORMATS:
                raise ApiError(400, f"unsupported response_format {fmt!r}; supported: {', '.join(SPEECH_FORMATS)}",
                               "response_format")
            fmt = fmt.lower()
        self._info.update(voice=voice.id, chars=len(text), speed=speed, format=fmt)

        if not svc.ready.is_set():
            raise ApiError(503, f"not ready: {svc.not_ready_reason}", None, {"Retry-After": "2"})

        mode = svc.faults.mode()
        if mode != "none":
            self._info["fault"] = mode
        if mode == "error500":
            svc.m_faults.inc(mode=mode)
            raise ApiError(500, "injected fault: error500", None)
        if mode == "not_audio":
            svc.m_faults.inc(mode=mode)
            page = b"<!doctype html><html><body><h1>Service temporarily unavailable</h1>" \
                   b"<p>injected fault: not_audio</p></body></html>\n"
            self._send(200, page, "text/html; charset=utf-8")
            return 200
        if mode == "silence":
            svc.m_faults.inc(mode=mode)
            rate = voice.engine.sample_rate or 22050
            seconds = min(10.0, max(0.5, 0.06 * len(text) / speed))
            pcm = bytes(2 * int(rate * seconds))
            self._send_audio(pcm, rate, fmt, voice.id)
            return 200

        no_cache = "no-cache" in (self.headers.get("Cache-Control") or "").lower()
        probe = self.headers.get("X-TTS-Probe") is not None
        pcm, rate = svc.synthesize(voice, text, speed, use_cache=not no_cache, info=self._info, probe=probe,
                                   client_gone=self._client_gone)
        svc.m_audio.inc(len(pcm) / 2 / rate, voice=voice.id)
        self._send_audio(pcm, rate, fmt, voice.id)
        return 200

    def _client_gone(self) -> bool:
        """True when the client has closed its side (EOF readable, nothing else pending)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _send_audio(self, pcm: bytes, rate: int, fmt: str, voice_id: str) -> None:
        seconds = len(pcm) / 2 / rate
        self._info["audio_s"] = round(seconds, 3)
        extra = {
            "X-TTS-Voice": voice_id,
            "X-TTS-Cache": self._info.get("cache", "off"),
            "X-TTS-Audio-Seconds": f"{seconds:.3f}",
            "X-TTS-Sample-Rate": str(rate),
        }
        if "synth_ms" in self._info:
            extra["X-TTS-Synthesis-Ms"] = str(self._info["synth_ms"])
        if fmt == "pcm":
            self._send(200, pcm, "audio/pcm", extra)
        else:
            self._send(200, wav.encode(pcm, rate), "audio/wav", extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


def make_server(service: Service) -> Server:
    handler = type("BoundHandler", (Handler,), {"service": service})
    host = service.s.host
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return Server((host, service.s.port), handler)


def main(argv=None) -> int:
    try:
        settings = config.load()
    except config.ConfigError as exc:
        _Log("-")("config_error", level="error", error=str(exc))
        return 2
    service = Service(settings)
    log = service.log
    try:
        httpd = make_server(service)
    except OSError as exc:
        log("bind_failed", level="error", host=settings.host, port=settings.port, error=str(exc))
        return 2
    port = httpd.server_address[1]

    def on_signal(signum, _frame):
        if not service.stop.is_set():
            log("signal", signal=signal.Signals(signum).name)
        service.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server_thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                     name="http", daemon=True)
    server_thread.start()
    log("listening", host=settings.host, port=port, version=__version__, pid=os.getpid(),
        webui=settings.enable_webui, cache=service.cache is not None, concurrency=settings.concurrency,
        queue_max=settings.queue_max, max_text_chars=settings.max_text_chars, fault_file=settings.fault_file,
        use_cuda=settings.use_cuda)
    threading.Thread(target=service.load_and_warm, name="loader", daemon=True).start()

    while not service.stop.wait(0.5):
        pass

    service.draining = True
    log("draining", inflight=service._inflight, timeout_s=settings.drain_timeout)
    httpd.shutdown()        # stop the accept loop
    httpd.server_close()    # close the listening socket: new connections are refused
    time.sleep(0.05)        # let just-accepted connections register as in flight
    drained = service.wait_idle(settings.drain_timeout)
    log("stopped", drained=drained, inflight=service._inflight, exit_code=service.exit_code)
    return service.exit_code
