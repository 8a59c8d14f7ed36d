"""Tiny thread-safe Prometheus registry (text exposition format 0.0.4), stdlib only."""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

LabelKey = Tuple[Tuple[str, str], ...]


def _esc(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(key: LabelKey, extra: str = "") -> str:
    parts = [f'{k}="{_esc(v)}"' for k, v in key]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def header(self) -> List[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: Dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> List[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, fn: Callable[[], Iterable[Tuple[Dict[str, str], float]]] = None) -> None:
        super().__init__(name, help_text)
        self._values: Dict[LabelKey, float] = {}
        self._fn = fn

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def render(self) -> List[str]:
        if self._fn is not None:
            items = [(tuple(sorted(l.items())), v) for l, v in self._fn()]
        else:
            with self._lock:
                items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(k)} {_num(v)}" for k, v in items]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = sorted(buckets)
        self._values: Dict[LabelKey, List[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        idx = bisect.bisect_left(self.buckets, value)
        with self._lock:
            row = self._values.get(key)
            if row is None:
                row = self._values[key] = [0.0] * (len(self.buckets) + 2)
            if idx < len(self.buckets):
                row[idx] += 1
            row[-2] += value
            row[-1] += 1

    def render(self) -> List[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._values.items())
        out = self.header()
        for key, row in items:
            acc = 0.0
            for bound, n in zip(self.buckets, row):
                acc += n
                le = 'le="%s"' % _num(bound)
                out.append(f"{self.name}_bucket{_labels(key, le)} {_num(acc)}")
            inf = 'le="+Inf"'
            out.append(f"{self.name}_bucket{_labels(key, inf)} {_num(row[-1])}")
            out.append(f"{self.name}_sum{_labels(key)} {_num(row[-2])}")
            out.append(f"{self.name}_count{_labels(key)} {_num(row[-1])}")
        return out


class Registry:
    def __init__(self) -> None:
        self._metrics: List[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def counter(self, name: str, help_text: str) -> Counter:
        return self.add(Counter(name, help_text))  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, fn=None) -> Gauge:
        return self.add(Gauge(name, help_text, fn))  # type: ignore[return-value]

    def histogram(self, name: str, help_text: str, buckets: Sequence[float]) -> Histogram:
        return self.add(Histogram(name, help_text, buckets))  # type: ignore[return-value]

    def render(self) -> str:
        lines: List[str] = []
        for metric in self._metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
