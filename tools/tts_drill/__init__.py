"""Failover drill measurement: a bounded load generator and a report builder.

``python -m tts_drill.loadgen`` sends synthesis requests to the VIP at a fixed rate and writes one
JSON line per request; ``python -m tts_drill.report`` turns those lines, the Keepalived
transition logs and the drill's events into figures and a pass/fail verdict (``timeline`` draws
them). Run with PYTHONPATH=tools from the repository root.
"""

import importlib
import math
import os
import sys

__all__ = ["OUTCOMES", "import_probe", "percentile"]

# Every request record carries exactly one of these; "ok" means HTTP 200 with real, non-silent
# audio, the others say what went wrong (client_saturated: the load generator had no free slot).
OUTCOMES = ("ok", "http_error", "invalid_audio", "timeout", "connection_error", "client_saturated")

MODULE_UTILS_ENV = "TTS_HA_MODULE_UTILS"


def import_probe():
    """Import the shared probe library, module_utils/tts_probe.py.

    $TTS_HA_MODULE_UTILS names its directory when set (deployed layouts); otherwise it is found
    relative to this package in the repository (tools/tts_drill/../../module_utils).
    """
    directory = os.environ.get(MODULE_UTILS_ENV) or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "module_utils")
    if not os.path.isfile(os.path.join(directory, "tts_probe.py")):
        raise ImportError(f"tts_probe.py not found in {directory} (set {MODULE_UTILS_ENV} to the"
                          " directory holding it)")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module("tts_probe")


def percentile(values, fraction):
    """Linear-interpolated percentile (fraction in [0, 1]) of numbers; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
