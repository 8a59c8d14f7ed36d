"""Settings read from the environment (``TTS_*``, ``ENABLE_WEBUI``, ``DISABLE_AUDIO_CACHE``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Mapping, Optional

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


class ConfigError(ValueError):
    """An environment variable has an unusable value."""


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r}: expected true/false")


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value}: expected {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value}: expected {lo}..{hi}")
    return value


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8000
    instance: str = field(default_factory=socket.gethostname)
    enable_webui: bool = True
    disable_audio_cache: bool = False
    cache_max_entries: int = 256
    cache_max_bytes: int = 64 * 1024 * 1024
    concurrency: int = 1
    queue_max: int = 8
    queue_timeout: float = 30.0
    # Health checks (X-TTS-Probe header, text up to this many chars) get their own lane, so an
    # instance that is busy but still speaks is not failed over. 0 disables the lane.
    probe_max_chars: int = 16
    probe_lane: int = 2
    max_text_chars: int = 2000
    max_body_bytes: int = 64 * 1024
    fault_file: str = "/tmp/tts-fault"
    fault_slow_seconds: float = 30.0
    use_cuda: str = "auto"
    onnx_threads: int = 0  # 0 = derive from CPU count / concurrency
    drain_timeout: float = 20.0
    model_path: Optional[str] = None
    espeak_bin: str = "espeak-ng"
    keepalive_timeout: float = 30.0

    @property
    def cache_enabled(self) -> bool:
        return not self.disable_audio_cache and self.cache_max_entries > 0 and self.cache_max_bytes > 0


def load(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); raise ConfigError on bad values."""
    env = os.environ if env is None else env
    cpus = _cpu_count()
    default_conc = 1 if cpus <= 2 else 2
    use_cuda = env.get("TTS_USE_CUDA", "auto").strip().lower() or "auto"
    if use_cuda in _TRUE:
        use_cuda = "true"
    elif use_cuda in _FALSE - {""}:
        use_cuda = "false"
    if use_cuda not in ("auto", "true", "false"):
        raise ConfigError(f"TTS_USE_CUDA={use_cuda!r}: expected auto|true|false")
    instance = (env.get("TTS_INSTANCE_NAME") or "").strip() or socket.gethostname()
    if len(instance) > 200 or not all(" " <= ch <= "~" for ch in instance):
        raise ConfigError(f"TTS_INSTANCE_NAME={instance!r}: use printable ASCII (it is sent as an HTTP header)")
    return Settings(
        host=(env.get("TTS_HOST") or "0.0.0.0").strip(),
        port=_int(env, "TTS_PORT", 8000, 0, 65535),
        instance=instance,
        enable_webui=_bool(env, "ENABLE_WEBUI", True),
        disable_audio_cache=_bool(env, "DISABLE_AUDIO_CACHE", False),
        cache_max_entries=_int(env, "TTS_CACHE_MAX_ENTRIES", 256, 0, 1_000_000),
        cache_max_bytes=_int(env, "TTS_CACHE_MAX_BYTES", 64 * 1024 * 1024, 0, 1 << 40),
        concurrency=_int(env, "TTS_CONCURRENCY", default_conc, 1, 64),
        queue_max=_int(env, "TTS_QUEUE_MAX", 8, 0, 10_000),
        queue_timeout=_float(env, "TTS_QUEUE_TIMEOUT", 30.0, 0.1, 3600.0),
        probe_max_chars=_int(env, "TTS_PROBE_MAX_CHARS", 16, 0, 1000),
        probe_lane=_int(env, "TTS_PROBE_LANE", 2, 0, 16),
        max_text_chars=_int(env, "TTS_MAX_TEXT_CHARS", 2000, 1, 1_000_000),
        max_body_bytes=_int(env, "TTS_MAX_BODY_BYTES", 64 * 1024, 1024, 64 * 1024 * 1024),
        fault_file=(env.get("TTS_FAULT_FILE") or "/tmp/tts-fault").strip(),
        fault_slow_seconds=_float(env, "TTS_FAULT_SLOW_SECONDS", 30.0, 0.0, 300.0),
        use_cuda=use_cuda,
        onnx_threads=_int(env, "TTS_ONNX_THREADS", 0, 0, 256),
        drain_timeout=_float(env, "TTS_DRAIN_TIMEOUT", 20.0, 0.0, 3600.0),
        model_path=(env.get("TTS_MODEL_PATH") or "").strip() or None,
        espeak_bin=(env.get("TTS_ESPEAK_BIN") or "espeak-ng").strip(),
        keepalive_timeout=_float(env, "TTS_KEEPALIVE_TIMEOUT", 30.0, 1.0, 3600.0),
    )


def onnx_threads_for(settings: Settings) -> int:
    if settings.onnx_threads > 0:
        return settings.onnx_threads
    return max(1, _cpu_count() // settings.concurrency)
