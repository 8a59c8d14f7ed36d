#!/usr/bin/env python3
"""What each TTS instance sustains alone: an open-loop ramp with the realistic drill corpus.

    PYTHONPATH=tools .venv/bin/python benchmarks/bench_capacity.py \\
        --target tts-primary:primary:http://172.30.0.11:8000/tts \\
        --target tts-standby:standby:http://172.30.0.12:8000/tts [--json-out reports/capacity.json]

(playbooks/capacity.yml finds the instances of an inventory and runs this for them.) With
--api-file (the API contract, JSON as tts_probe.resolve_contract() gives it) each URL is the
instance's base URL (http://172.30.0.11:8000) and the requests follow the contract; without it
they are POSTs of {"text": ...} to the URL as given.

For each target in turn, the drill's load generator (tools/tts_drill/loadgen.py, open loop: one
request every 1/rate s whatever the earlier ones are doing) sends the realistic corpus
(tools/tts_drill/corpus.py: 4-25 word sentences, each with its own reference number, so no audio
cache ever answers) straight to the instance, for --step-s seconds per rate, at rates rising by
--factor from --start-rate. A step holds when at most --max-error-ratio of its requests failed and
the p95 latency of the ok ones stayed within --max-p95-ms, or within --max-p95-ratio times the
first rate's p95 where that is more (saturation shows as queueing, not as the length of one
synthesis: a slow machine's lone long sentence can take near 2 s); the ramp stops at the first step
that breaks a bound (or at --max-rate). The sustainable rate is the highest rate that held.

--start-rate auto (the default) enters the ramp of 0.5/s (0.5, 0.5 x factor, ...) at its highest
rate at or below half the rate the target serves one request at a time (0.5 / the median latency
of its warm-up requests). That rate loads a one-worker server to about half, so the first step
still shows its unqueued latency (the p95 ratio's reference), and the ramp skips the steps far
below any saturation, which cost 20 s each and say nothing: a fast GPU server no longer climbs
from 0.5/s, a 2-core lab saves 3-4 steps per instance. The rates it tries are those a ramp from
0.5/s tries, so both find the same sustainable rate (an earlier auto started at the half rate
itself, off that grid: on the lab it held a rate 15 % above the grid's, and the drill rate half
of it was more than a rolled-out pair could carry; docs/capacity.md).

Prints a table (instance, profile, sustainable rate, p50/p95 at that rate, where it broke) and the
ratio standby/primary (the lowest standby against the lowest primary; goal >= 1.0: a standby must
carry the peak load alone). --json-out writes the figures (the drill's preflight reads them:
drill_capacity_file), and a .md table next to it.

Bounded: at most --max-steps steps per target, and the whole run within --budget-s (a step that
would not fit is not started). Traffic goes only to the given URLs: the lab's containers or
loopback. Not a test: it takes minutes and its figures depend on the machine.
Exit codes: 0 measured, 1 a target never held even the first rate (or no step ran), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from tts_drill import import_probe, percentile  # noqa: E402
from tts_drill.corpus import Corpus  # noqa: E402
from tts_drill.loadgen import LoadGenerator, _positive  # noqa: E402

DEFAULTS = {
    "start_rate": "auto", "factor": 1.25, "max_rate": 20.0, "step_s": 20.0, "max_p95_ms": 2000.0,
    "max_p95_ratio": 0.0, "max_error_ratio": 0.0, "timeout": 10.0, "pause_s": 2.0, "warmup": 3, "max_steps": 16,
    "budget_s": 1500.0,
}


# The ramp auto enters (and its first rate when the warm-up had no ok answer to time: the ramp
# then says why it broke).
AUTO_GRID_BASE = 0.5


def auto_start_rate(records, maximum, factor):
    """The first rate of an auto ramp and the warm-up's median ok latency (ms): the highest rate
    of the ramp AUTO_GRID_BASE x factor^k (k may be negative) at or below half the rate
    one-at-a-time requests are served at (0.5 / the median latency, s), and at most `maximum`.
    Not rounded: rates() rounds each rate of the ramp as a ramp from AUTO_GRID_BASE does."""
    latencies = [r["latency_ms"] for r in records if r["outcome"] == "ok" and r.get("latency_ms")]
    if not latencies:
        return AUTO_GRID_BASE, None
    median = percentile(latencies, 0.5)
    half = min(maximum, 500.0 / median)
    # The small epsilon keeps a half rate that is a grid rate itself (up to float error) on it.
    k = math.floor(math.log(half / AUTO_GRID_BASE) / math.log(factor) + 1e-9)
    return max(0.01, AUTO_GRID_BASE * factor ** k), round(median, 1)


def rates(start, factor, maximum, max_steps):
    """Geometric ramp start, start*factor, ... up to maximum (included when reached), rounded."""
    out, rate = [], start
    while rate <= maximum + 1e-9 and len(out) < max_steps:
        out.append(round(rate, 2))
        rate *= factor
    return out


def judge(records, rate, step_s, max_p95_ms, max_error_ratio):
    """Figures of one step from its load generator records, and whether it held the bounds."""
    total = len(records)
    ok = [r for r in records if r["outcome"] == "ok"]
    latencies = [r["latency_ms"] for r in ok if r.get("latency_ms") is not None]
    failed = total - len(ok)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    outcomes = {}
    for record in records:
        if record["outcome"] != "ok":
            outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
    reasons = []
    if total == 0:
        reasons.append("no request was sent")
    if total and failed / total > max_error_ratio:
        reasons.append(f"{failed}/{total} failed ({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})")
    if p95 is None or p95 > max_p95_ms:
        reasons.append("no ok answer" if p95 is None else f"p95 {p95:.0f} ms > {max_p95_ms:.0f} ms")
    instances = sorted({r["instance"] for r in ok if r.get("instance")})
    return {
        "rate_per_s": rate, "duration_s": step_s, "requests": total, "ok": len(ok), "failed": failed,
        "failed_by_outcome": outcomes,
        "p50_ms": None if p50 is None else round(p50, 1), "p95_ms": None if p95 is None else round(p95, 1),
        "max_ms": max(latencies) if latencies else None,
        "instances": instances, "held": not reasons, "broke": "; ".join(reasons) or None,
    }


class Texts:
    """Corpus sentences from `offset` on: every step of a run gets texts no other step sent."""

    def __init__(self, corpus, offset):
        self.corpus, self.offset = corpus, offset

    def __call__(self, seq):
        return self.corpus.text(self.offset + seq)


def run_step(url, rate, step_s, texts, timeout, out, api=None):
    options = {} if api is None else {"api": api}
    generator = LoadGenerator(url, str(out), rate=rate, duration=step_s,
                              max_requests=max(1, math.ceil(rate * step_s)), timeout=timeout, texts=texts,
                              **options)
    summary = generator.run()
    if generator.error is not None:
        raise generator.error
    records = [json.loads(line) for line in Path(out).read_text(encoding="utf-8").splitlines() if line.strip()]
    return summary, records


class Ramp:
    """Ramps every target in turn; all texts from one corpus seed, never one twice."""

    def __init__(self, args, log=print, api=None):
        self.args = args
        self.api = api
        self.corpus = Corpus(args.seed)
        self.next_seq = 0
        self.deadline = time.monotonic() + args.budget_s
        self.log = log

    def texts(self, count):
        texts = Texts(self.corpus, self.next_seq)
        self.next_seq += count
        return texts

    def measure(self, target, workdir):
        args = self.args
        name, profile, url = target["name"], target["profile"], target["url"]
        result = {**target, "sustainable_rate_per_s": None, "p50_ms": None, "p95_ms": None,
                  "broke_at_rate_per_s": None, "broke": None, "steps": [], "stopped_by": None,
                  "max_p95_ms": args.max_p95_ms, "start_rate_per_s": args.start_rate,
                  "warmup_median_ms": None}
        start = args.start_rate  # auto needs a warm-up (main() refuses it without one)
        if args.warmup:
            # Not judged: the first syntheses after a quiet spell can pay for cold caches of the OS.
            _summary, warmup = run_step(url, 1.0, float(args.warmup), self.texts(args.warmup), args.timeout,
                                        workdir / f"{name}-warmup.jsonl", self.api)
            if args.start_rate == "auto":
                start, result["warmup_median_ms"] = auto_start_rate(warmup, args.max_rate, args.factor)
                result["start_rate_per_s"] = round(start, 2)
                self.log(f"  {name} ({profile}) warm-up median {_fmt(result['warmup_median_ms'])} ms:"
                         f" ramp from {result['start_rate_per_s']:g}/s")
        for rate in rates(start, args.factor, args.max_rate, args.max_steps):
            # A step needs its own duration, the last requests' timeout and the pause after it.
            if time.monotonic() + args.step_s + args.timeout + args.pause_s > self.deadline:
                result["stopped_by"] = "budget"
                break
            count = max(1, math.ceil(rate * args.step_s))
            _summary, records = run_step(url, rate, args.step_s, self.texts(count), args.timeout,
                                         workdir / f"{name}-{rate:g}.jsonl", self.api)
            if not result["steps"] and args.max_p95_ratio > 0:
                # The first (lightest) rate's p95 is this machine's unqueued latency.
                first = judge(records, rate, args.step_s, math.inf, args.max_error_ratio)["p95_ms"]
                if first is not None:
                    result["max_p95_ms"] = round(max(args.max_p95_ms, args.max_p95_ratio * first), 1)
            step = judge(records, rate, args.step_s, result["max_p95_ms"], args.max_error_ratio)
            result["steps"].append(step)
            self.log(f"  {name} ({profile}) {rate:g}/s: {step['ok']}/{step['requests']} ok,"
                     f" p50 {_fmt(step['p50_ms'])} ms, p95 {_fmt(step['p95_ms'])} ms"
                     f"{'' if step['held'] else ' -> broke: ' + step['broke']}")
            if not step["held"]:
                result.update(broke_at_rate_per_s=rate, broke=step["broke"], stopped_by="bound")
                break
            result.update(sustainable_rate_per_s=rate, p50_ms=step["p50_ms"], p95_ms=step["p95_ms"])
            # Let the instance drain what a near-saturating step left queued before the next one.
            time.sleep(args.pause_s)
        else:
            result["stopped_by"] = "max_rate"
        return result


def _lowest(results, primary):
    values = [r["sustainable_rate_per_s"] or 0.0 for r in results if (r["profile"] == "primary") == primary]
    return min(values) if values else None


def ratio(results):
    """Lowest standby (non-primary) sustainable rate over the lowest primary one, or None."""
    primary, standby = _lowest(results, True), _lowest(results, False)
    if primary is None or standby is None or primary == 0:
        return None
    return round(standby / primary, 2)


def drill_rate(results):
    """The drill rate these figures allow: half the lowest standby's sustainable rate (after a
    failover the standby carries it alone, with room for the takeover; docs/capacity.md)."""
    standby = _lowest(results, False)
    return round(standby / 2, 2) if standby else None


def _fmt(value):
    if value is None:
        return "n/a"
    return f"{value:g}" if isinstance(value, float) else str(value)


def table(report):
    lines = ["| instance | profile | sustainable rate (req/s) | p50 at that rate (ms) | p95 at that rate (ms)"
             " | broke at (req/s) | why |", "|---|---|---|---|---|---|---|"]
    for r in report["instances"]:
        lines.append(f"| {r['name']} | {r['profile']} | {_fmt(r['sustainable_rate_per_s'])} | {_fmt(r['p50_ms'])}"
                     f" | {_fmt(r['p95_ms'])} | {_fmt(r['broke_at_rate_per_s'])}"
                     f" | {(r['broke'] or r['stopped_by'] or '').replace('|', '/')} |")
    lines.append("")
    lines.append(f"Standby/primary: {_fmt(report['standby_primary_ratio'])} (goal >= 1.0: a standby must"
                 " carry the peak load alone).")
    b = report["bounds"]
    bounds = ", ".join(f"{r['name']}: {_fmt(r.get('max_p95_ms'))} ms" for r in report["instances"])
    lines.append(f"Load: realistic corpus (seed {report['corpus']['seed']}, 4-25 words, every text unique),"
                 f" open loop straight to each instance, {b['step_s']:g} s per rate from {_start(report)}"
                 f" x{b['factor']:g}; a rate holds with <= {b['max_error_ratio'] * 100:g} % failed and"
                 f" p95 <= {b['max_p95_ms']:g} ms"
                 + (f" or {b['max_p95_ratio']:g} x the first rate's p95 where more ({bounds})"
                    if b.get("max_p95_ratio") else "")
                 + f" (request timeout {b['timeout']:g} s).")
    return "\n".join(lines) + "\n"


def _start(report):
    """The ramp's first rate as the table's footnote gives it."""
    if report["bounds"]["start_rate"] != "auto":
        return f"{report['bounds']['start_rate']:g}/s"
    firsts = ", ".join(f"{r['name']} {r['start_rate_per_s']:g}/s" for r in report["instances"])
    return (f"the {AUTO_GRID_BASE:g}/s ramp's highest rate at or below half the warm-up's one-at-a-time"
            f" rate ({firsts})")


def _start_rate(text):
    if text == "auto":
        return text
    try:
        return _positive(float)(text)
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto or a rate > 0, got {text!r}") from None


def _target(text):
    name, sep1, rest = text.partition(":")
    profile, sep2, url = rest.partition(":")
    if not (sep1 and sep2 and name and profile and url.startswith(("http://", "https://"))):
        raise argparse.ArgumentTypeError(f"expected NAME:PROFILE:URL (URL http://...), got {text!r}")
    return {"name": name, "profile": profile, "url": url}


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=_target, action="append", required=True, metavar="NAME:PROFILE:URL",
                    help="an instance's synthesis URL, straight (not through the VIP or a router); repeatable")
    ap.add_argument("--start-rate", type=_start_rate, default=DEFAULTS["start_rate"],
                    help="first rate, requests/s, or auto: half the rate the warm-up's requests were"
                    " served at one at a time (default %(default)s)")
    ap.add_argument("--factor", type=float, default=DEFAULTS["factor"], help="rate multiplier per step"
                    " (default %(default)s)")
    ap.add_argument("--max-rate", type=_positive(float), default=DEFAULTS["max_rate"],
                    help="last rate tried (default %(default)s)")
    ap.add_argument("--step-s", type=_positive(float), default=DEFAULTS["step_s"],
                    help="seconds of load per rate (default %(default)s)")
    ap.add_argument("--max-p95-ms", type=_positive(float), default=DEFAULTS["max_p95_ms"],
                    help="a rate holds while the p95 latency stays within this (default %(default)s)")
    ap.add_argument("--max-p95-ratio", type=float, default=DEFAULTS["max_p95_ratio"],
                    help="or within this many times the first rate's p95 where that is more; 0: off"
                    " (default %(default)s)")
    ap.add_argument("--max-error-ratio", type=float, default=DEFAULTS["max_error_ratio"],
                    help="and at most this share of requests failed (default %(default)s)")
    ap.add_argument("--timeout", type=_positive(float), default=DEFAULTS["timeout"],
                    help="seconds for each request (default %(default)s)")
    ap.add_argument("--pause-s", type=float, default=DEFAULTS["pause_s"],
                    help="pause between steps, seconds (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=DEFAULTS["warmup"],
                    help="unjudged requests at 1/s before each target's ramp (default %(default)s)")
    ap.add_argument("--max-steps", type=_positive(int), default=DEFAULTS["max_steps"],
                    help="steps per target at most (default %(default)s)")
    ap.add_argument("--budget-s", type=_positive(float), default=DEFAULTS["budget_s"],
                    help="the whole run's time budget, seconds (default %(default)s)")
    ap.add_argument("--seed", type=int, default=None, help="corpus seed (default: from the clock)")
    ap.add_argument("--api-file", help="API contract (JSON): the URLs are then base URLs")
    ap.add_argument("--json-out", help="write the figures here (and a .md table beside it)")
    ap.add_argument("--requests-dir", help="keep each step's request log here (default: a temporary"
                                           " directory, removed)")
    return ap


def main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    if args.factor <= 1.0:
        ap.error("--factor must be > 1")
    if not 0 <= args.max_error_ratio < 1:
        ap.error("--max-error-ratio must be in [0, 1)")
    if args.start_rate == "auto" and args.warmup < 1:
        ap.error("--start-rate auto needs --warmup >= 1 (the warm-up's latencies set the first rate)")
    if args.start_rate != "auto" and args.start_rate > args.max_rate:
        ap.error("--start-rate must not exceed --max-rate")
    if args.seed is None:
        args.seed = time.time_ns() // 1_000_000 % 2**31
    api = None
    if args.api_file:
        tts_probe = import_probe()
        try:
            with open(args.api_file, encoding="utf-8") as handle:
                api = tts_probe.check_contract(json.load(handle))
        except (OSError, ValueError, tts_probe.ProbeArgumentError) as exc:
            ap.error(f"--api-file: {args.api_file}: {exc}")
    started = time.time()
    ramp = Ramp(args, log=lambda line: print(line, file=sys.stderr, flush=True), api=api)
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as scratch:
        workdir = Path(args.requests_dir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for target in args.target:
            print(f"ramping {target['name']} ({target['profile']}) at {target['url']}", file=sys.stderr, flush=True)
            results.append(ramp.measure(target, workdir))
    report = {
        "measured_at": started, "measured_for_s": round(time.time() - started, 1),
        "corpus": {"name": "realistic", "seed": args.seed},
        "bounds": {key: getattr(args, key) for key in ("start_rate", "factor", "max_rate", "step_s", "max_p95_ms",
                                                       "max_p95_ratio", "max_error_ratio", "timeout", "pause_s", "max_steps")},
        "instances": results,
        "standby_primary_ratio": ratio(results),
        "drill_rate_per_s": drill_rate(results),
    }
    text = table(report)
    print(text, end="")
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text("# Capacity of each instance alone\n\n" + text, encoding="utf-8")
        print(f"written: {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0 if results and all(r["sustainable_rate_per_s"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
