#!/usr/bin/env python3
"""Health-check cost before and after the resident prober (issue 16), on loopback stubs.

    .venv/bin/python benchmarks/bench_probe_load.py [--duration 10] [--routers 2] [--traffic 2]

Two nodes, one TTS instance each (a loopback stub that counts the syntheses it answers and serves
a /metrics counter of audio). The same layout is checked the two ways, for the same --duration,
in VIP mode (no router) and in router mode (a router on each node, --routers in all):

before  keepalived's vrrp_script: `tts-synthesis-check` forked every second on each node (against
        its instance in VIP mode, through its router - so on the primary - in router mode); in
        router mode every router also checks every instance with a real synthesis every second
        (HAProxy's http-check, simulated by a thread speaking the same request).
after   one resident prober per node (`tts-ha-prober`, the shipped defaults: ping every 0.25 s,
        a synthesis every 1 s, every 2 s while real traffic proves the instance); in router mode
        keepalived follows the router's stats and every router reads each prober's verdict over
        the agent protocol (a TCP connect and one line, no synthesis).

--traffic R sends R real syntheses per second to the primary (a counter the evidence reads), so
the back-off shows. Prints, per mode: syntheses per second spent on health checking per instance,
and the CPU seconds per second (in % of one core) the health checking costs on each node: the
forked checks (RUSAGE_CHILDREN) before, the prober process after; the routers' own check CPU is
HAProxy's and is not measured, only their syntheses are counted. Figures depend on the machine;
this is a measurement, not a timed assertion. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "module_utils"))

import tts_probe  # noqa: E402

CHECK = REPO / "bin" / "tts-synthesis-check"
PROBER = REPO / "bin" / "tts-ha-prober"


def _wav():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(b"\x00\x40\x00\xc0" * 2205)
    return buffer.getvalue()


WAV = _wav()


class Instance(ThreadingHTTPServer):
    """A TTS stand-in: counts probe syntheses (X-TTS-Probe header) apart from real ones."""
    daemon_threads = True

    def __init__(self, name):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.probes = 0
        self.real = 0
        self.audio_s = 0.0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self):
        with self.lock:
            self.probes = self.real = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = f"tts_audio_seconds_total {self.server.audio_s}\n".encode()
        self._send(200, body, "text/plain")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            if self.headers.get("X-TTS-Probe"):
                self.server.probes += 1
            else:
                self.server.real += 1
            self.server.audio_s += 0.2
        self._send(200, WAV, "audio/wav")

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _every(period, stop, action):
    def loop():
        next_at = time.monotonic()
        while not stop.is_set():
            action()
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _probe_args(contract, url):
    return tts_probe.contract_probe_arguments(contract, url)


def run_before(instances, contract, api_file, router_mode, routers, duration, traffic):
    """vrrp_script forks every second per node (+ the routers' http checks in router mode)."""
    stop = threading.Event()
    threads = []
    node_cpu = {}
    primary = instances[0]
    for inst in instances:
        inst.reset()
    if traffic:
        threads.append(_every(1.0 / traffic, stop, lambda: tts_probe.probe(primary.url + "/tts", timeout=5)))
    if router_mode:
        for _router in range(routers):
            for inst in instances:
                args = _probe_args(contract, inst.url)
                threads.append(_every(1.0, stop, lambda a=args: tts_probe.probe(**dict(a, timeout=2.0))))
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    forks = 0
    # Each node's keepalived runs the CLI once a second, one node after the other within the second.
    while time.monotonic() - started < duration:
        tick = time.monotonic()
        for index, inst in enumerate(instances):
            target = primary if router_mode else inst  # through the router: the primary answers
            t0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, str(CHECK), "--url", target.url, "--api-file", api_file,
                            "--timeout", "1"], capture_output=True, timeout=10, check=False)
            t1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            node_cpu[f"node{index + 1}"] = node_cpu.get(f"node{index + 1}", 0.0) + (
                t1.ru_utime + t1.ru_stime - t0.ru_utime - t0.ru_stime)
            forks += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(3)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert after.ru_utime + after.ru_stime >= cpu_before
    return _figures(instances, elapsed, {n: c / elapsed for n, c in node_cpu.items()}, {"processes_forked": forks})


def _proc_cpu(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def run_after(instances, api_file, router_mode, routers, duration, traffic, workdir):
    """One tts-ha-prober per node; routers read the verdict with agent checks."""
    stop = threading.Event()
    threads = []
    primary = instances[0]
    for inst in instances:
        inst.reset()
    procs = []
    agent_ports = []
    for index, inst in enumerate(instances):
        node_dir = Path(workdir) / f"node{index + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        agent_ports.append(port)
        config = {"url": inst.url, "api_file": api_file, "track_file": str(node_dir / "verdict"),
                  "state_file": str(node_dir / "state.json"), "evidence_state": str(node_dir / "e.json"),
                  "agent_port": port if router_mode else 0, "agent_bind": "127.0.0.1",
                  "host": f"node{index + 1}", "watchdog": False}
        (node_dir / "prober.json").write_text(json.dumps(config))
        procs.append(subprocess.Popen([sys.executable, str(PROBER), "--config", str(node_dir / "prober.json")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if traffic:
        threads.append(_every(1.0 / traffic, stop, lambda: tts_probe.probe(primary.url + "/tts", timeout=5)))
    if router_mode:
        def agent_check(port):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.recv(64)
            except OSError:
                pass
        for _router in range(routers):
            for port in agent_ports:
                threads.append(_every(0.25, stop, lambda p=port: agent_check(p)))
    time.sleep(1.5)  # settle: the probers start and rise
    for inst in instances:
        inst.reset()
    cpu0 = [_proc_cpu(p.pid) for p in procs]
    started = time.monotonic()
    time.sleep(duration)
    elapsed = time.monotonic() - started
    cpu1 = [_proc_cpu(p.pid) for p in procs]
    figures = _figures(instances, elapsed, {f"node{i + 1}": (cpu1[i] - cpu0[i]) / elapsed for i in range(len(procs))},
                       {"processes_forked": 0})
    stop.set()
    for thread in threads:
        thread.join(3)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    return figures


def _figures(instances, elapsed, node_cpu, extra):
    return dict({"seconds": round(elapsed, 2),
                 "probe_syntheses_per_s": {inst.name: round(inst.probes / elapsed, 2) for inst in instances},
                 "real_syntheses_per_s": {inst.name: round(inst.real / elapsed, 2) for inst in instances},
                 "check_cpu_percent_of_a_core": {node: round(100 * cpu, 2) for node, cpu in sorted(node_cpu.items())}},
                **extra)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per case (default 10)")
    parser.add_argument("--routers", type=int, default=2, help="routers in router mode (default 2, one per node)")
    parser.add_argument("--traffic", type=float, default=0.0, help="real syntheses per second to the primary")
    parser.add_argument("--json-out", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 0 <= args.routers <= 16 or not 0 <= args.traffic <= 50:
        print("bad arguments: duration 1-300 s, routers 0-16, traffic 0-50/s", file=sys.stderr)
        return 2
    contract = tts_probe.resolve_contract("reference")
    instances = [Instance("primary"), Instance("standby")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as workdir:
        api_file = os.path.join(workdir, "tts-api.json")
        with open(api_file, "w", encoding="utf-8") as handle:
            json.dump(contract, handle)
        for mode in ("vip", "router"):
            router_mode = mode == "router"
            results[f"{mode}/before"] = run_before(instances, contract, api_file, router_mode, args.routers,
                                                   args.duration, args.traffic)
            results[f"{mode}/after"] = run_after(instances, api_file, router_mode, args.routers, args.duration,
                                                 args.traffic, os.path.join(workdir, mode))
    print(f"health-check cost, {args.duration:g} s per case, {args.routers} routers in router mode,"
          f" {args.traffic:g} real syntheses/s to the primary")
    print(f"{'case':<15} {'probe syntheses/s primary':>26} {'standby':>8} {'check CPU % node1':>18} {'node2':>6}"
          f" {'forks':>6}")
    for case, fig in results.items():
        syn, cpu = fig["probe_syntheses_per_s"], fig["check_cpu_percent_of_a_core"]
        print(f"{case:<15} {syn['primary']:>26} {syn['standby']:>8} {cpu.get('node1', 0):>18} {cpu.get('node2', 0):>6}"
              f" {fig['processes_forked']:>6}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({"settings": vars(args), "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
