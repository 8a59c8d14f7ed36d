"""Helpers for the tts-server tests: run the real server process, talk HTTP, inspect WAV/metrics."""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "images" / "tts-server"
MODULE_UTILS = REPO / "module_utils"
_VENV_PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PY) if _VENV_PY.exists() else sys.executable

LONG_SENTENCE = (
    "High availability for speech means that a listener never notices which instance answered, "
    "because the standby was warm, the probe was honest, and the switch took less than a second. "
)


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes, elapsed: float) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:  # helps assertion messages
        return f"<Response {self.status} {self.header('content-type')} {self.body[:160]!r}>"


def http_request(port: int, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None, timeout: float = 60.0,
                 host: str = "127.0.0.1") -> Response:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - t0
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, elapsed)
    finally:
        conn.close()


def post_json(port: int, path: str, obj, headers: Optional[Dict[str, str]] = None, timeout: float = 60.0,
              host: str = "127.0.0.1") -> Response:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return http_request(port, "POST", path, json.dumps(obj).encode("utf-8"), hdrs, timeout, host)


# ---- audio --------------------------------------------------------------------------------
def parse_wav(data: bytes) -> Tuple[int, int, int, List[int]]:
    """(sample_rate, channels, sample_width, samples) of a PCM WAV; raises on malformed data."""
    with wave.open(io.BytesIO(data), "rb") as w:
        rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        frames = w.readframes(n)
    assert width == 2, f"expected 16-bit PCM, got {8 * width}-bit"
    samples = list(struct.unpack(f"<{len(frames) // 2}h", frames))
    return rate, channels, width, samples


def rms(samples: Iterable[int]) -> float:
    samples = list(samples)
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def assert_speech_wav(data: bytes, min_seconds: float = 0.2, min_rms: float = 300.0) -> Tuple[int, float, float]:
    rate, channels, _, samples = parse_wav(data)
    assert channels == 1
    assert 8000 <= rate <= 48000
    seconds = len(samples) / rate
    level = rms(samples)
    assert seconds >= min_seconds, f"only {seconds:.3f}s of audio"
    assert level >= min_rms, f"audio RMS {level:.1f} looks like silence"
    return rate, seconds, level


# ---- metrics ------------------------------------------------------------------------------
def parse_metrics(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            labels = []
            for part in _split_labels(rest.rstrip("}")):
                k, v = part.split("=", 1)
                labels.append((k, json.loads(v)))
            key = (name, tuple(sorted(labels)))
        else:
            key = (name_labels, ())
        out[key] = float(value.replace("+Inf", "inf"))
    return out


def _split_labels(s: str) -> List[str]:
    parts, cur, quoted, esc = [], "", False, False
    for ch in s:
        if esc:
            cur += ch
            esc = False
            continue
        if ch == "\\":
            cur += ch
            esc = True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def metric(metrics, name: str, **labels) -> float:
    want = tuple(sorted(labels.items()))
    return metrics.get((name, want), 0.0)


# ---- Debian tools -------------------------------------------------------------------------
def ensure_debian_tool(binary: str, package: str, timeout: float = 600.0) -> Optional[str]:
    """Return the path of ``binary``; apt-get install ``package`` first when missing and we are root."""
    path = shutil.which(binary)
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return shutil.which(binary)


# ---- the server process -------------------------------------------------------------------
def debian_tool_or_skip(binary: str, package: str) -> str:
    """The tool's path (installed on demand, see ensure_debian_tool), or skip naming the CI package list."""
    path = ensure_debian_tool(binary, package)
    if path is None:
        pytest.skip(f"{binary} is not installed (listed in .ci/apt-packages.txt)")
    return path


class TTSServer:
    """Runs ``python -m tts_server`` on an ephemeral 127.0.0.1 port with its own fault file."""

    def __init__(self, workdir: Path, name: str, **env: str) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = self.workdir / f"{name}.log"
        self.fault_file = self.workdir / f"{name}.fault"
        self.env = {
            "PYTHONPATH": str(SERVER_DIR),
            "TTS_HOST": "127.0.0.1",
            "TTS_PORT": "0",
            "TTS_INSTANCE_NAME": name,
            "TTS_FAULT_FILE": str(self.fault_file),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
        }
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.started_at: Optional[float] = None

    # lifecycle
    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> "TTSServer":
        self._log_fh = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([PYTHON, "-m", "tts_server"], cwd=str(REPO), env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log_fh)
        deadline = time.monotonic() + 30
        while self.port is None:
            for rec in self.log_records():
                if rec.get("event") == "listening":
                    self.port = int(rec["port"])
                    break
            if self.port is not None:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early rc={self.proc.returncode}: {self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not report its port: {self.log_text()[-2000:]}")
            time.sleep(0.02)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited rc={self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if self.get("/ready", timeout=5).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s: {self.log_text()[-2000:]}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log_fh", None):
            self._log_fh.close()
            self._log_fh = None
        return self.proc.returncode

    # http
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 30.0, headers=None) -> Response:
        return http_request(self.port, "GET", path, headers=headers, timeout=timeout)

    def post(self, path: str, obj, headers=None, timeout: float = 60.0) -> Response:
        return post_json(self.port, path, obj, headers, timeout)

    def tts(self, text: str, timeout: float = 60.0, no_cache: bool = False, **fields) -> Response:
        headers = {"Cache-Control": "no-cache"} if no_cache else None
        return self.post("/tts", dict(text=text, **fields), headers, timeout)

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode("utf-8"))

    # faults
    def set_fault(self, mode: str) -> None:
        tmp = self.fault_file.with_suffix(".tmp")
        tmp.write_text(mode + "\n")
        os.replace(tmp, self.fault_file)

    def clear_fault(self) -> None:
        try:
            self.fault_file.unlink()
        except FileNotFoundError:
            pass

    # logs
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> List[dict]:
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_tts_probe():
    """Import the shared probe library (module_utils/tts_probe.py) or return None when absent."""
    if not (MODULE_UTILS / "tts_probe.py").exists():
        return None
    if str(MODULE_UTILS) not in sys.path:
        sys.path.insert(0, str(MODULE_UTILS))
    import importlib

    return importlib.import_module("tts_probe")
