"""Fault injection for failover drills: the file named by TTS_FAULT_FILE holds one mode."""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional, Tuple

MODES = ("none", "silence", "not_audio", "error500", "slow")


class FaultFile:
    """Reads the fault mode per request; re-reads the file only when its stat signature changes."""

    def __init__(self, path: str, on_invalid: Optional[Callable[[str], None]] = None) -> None:
        self.path = path
        self._sig: Optional[Tuple[int, int, int]] = None
        self._mode = "none"
        self._lock = threading.Lock()
        self._on_invalid = on_invalid

    def mode(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError:
            self._sig = None
            self._mode = "none"
            return "none"
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._sig:
            return self._mode
        with self._lock:
            try:
                with open(self.path, "r", encoding="utf-8", errors="replace") as fh:
                    raw = fh.read(256)
            except OSError:
                return "none"
            value = raw.strip().lower() or "none"
            if value not in MODES:
                if self._on_invalid is not None:
                    self._on_invalid(value)
                value = "none"
            self._sig, self._mode = sig, value
            return value
