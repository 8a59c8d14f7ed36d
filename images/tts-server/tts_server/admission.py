"""Bounded admission for synthesis: N workers, at most M waiting, everything else rejected now."""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Iterator


class QueueFull(Exception):
    """No worker free and the wait queue is full (or the wait timed out)."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class Admission:
    def __init__(self, workers: int, queue_max: int, queue_timeout: float, probe_lane: int = 0) -> None:
        self.workers = workers
        self.probe_lane = probe_lane
        self.probe_active = 0
        self.queue_max = queue_max
        self.queue_timeout = queue_timeout
        self._cond = threading.Condition(threading.Lock())
        self.active = 0
        self.waiting = 0
        self.rejected = 0
        self._ewma = 0.5  # seconds per synthesis, for Retry-After

    def retry_after(self) -> int:
        backlog = (self.waiting + self.active) / max(1, self.workers)
        return max(1, min(60, math.ceil(self._ewma * max(1.0, backlog))))

    @contextmanager
    def slot(self, probe: bool = False) -> Iterator[None]:
        # A health check skips the queue on its own small lane: it still runs the real model
        # (a hung or broken model still fails it), but a full queue of real work cannot starve it.
        if probe:
            with self._cond:
                lane = self.probe_active < self.probe_lane
                if lane:
                    self.probe_active += 1
            if lane:
                try:
                    yield
                finally:
                    with self._cond:
                        self.probe_active -= 1
                return
        with self._cond:
            if self.active >= self.workers:
                if self.waiting >= self.queue_max:
                    self.rejected += 1
                    raise QueueFull(self.retry_after(), "synthesis queue full")
                self.waiting += 1
                deadline = time.monotonic() + self.queue_timeout
                try:
                    while self.active >= self.workers:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self.rejected += 1
                            raise QueueFull(self.retry_after(), "timed out waiting for a synthesis worker")
                        self._cond.wait(left)
                finally:
                    self.waiting -= 1
            self.active += 1
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            with self._cond:
                self.active -= 1
                self._ewma = 0.8 * self._ewma + 0.2 * elapsed
                self._cond.notify()
