"""Run a rollout (site.yml) while the drill's load goes through the address clients use.

    python -m tts_drill.rollout --out-dir reports/rollout-X [--url URL --api-file F | --from-inventory]
        [--rate 1.5] [--seed N] [--label settings] -- ansible-playbook playbooks/site.yml -e ...

The load generator (tts_drill.loadgen, the drill's settings) starts, after --baseline-s the command
runs, --after-s later the load stops. Figures go to OUT/rollout.json and one summary line to stdout:
failed requests, how long the command took, the VIP moves site.yml reported, and the stalls
clients saw (requests slower than --stall-ms, the longest time without a completed good answer).
Exit status: the command's. Run with PYTHONPATH=tools from the repository root.
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter

from tts_drill import percentile

# site.yml's summary line (the callback may wrap it anywhere a space is).
VIP_MOVES = re.compile(r"rollout:\s+(\d+)\s+instance\(s\)\s+replaced\s+\(([^)]*)\)\s+in\s+(\d+)\s+s,"
                       r"\s+(\d+)\s+VIP\s+move\(s\)")


def figures(records, started, ended, output="", stall_ms=2000.0):
    """Figures of a rollout from the load generator's records and site.yml's output.

    started/ended: epoch seconds of the command; a request counts when it started in between.
    """
    during = [r for r in records if started <= r["t_start"] <= ended]
    failed = [r for r in records if not r["ok"]]
    ok = sorted((r for r in records if r["ok"]), key=lambda r: r["t_end"])
    lat = [r["latency_ms"] for r in ok if r.get("latency_ms") is not None]
    slow = [r for r in ok if (r.get("latency_ms") or 0) > stall_ms]
    # The longest time a client waited without any good answer completing (open-loop load: a
    # gap longer than a few request intervals is a stall clients noticed).
    ends = [started] + [r["t_end"] for r in ok if started <= r["t_end"] <= ended] + [ended]
    gaps = [(b - a, a) for a, b in zip(ends, ends[1:])]
    gap, gap_at = max(gaps) if gaps else (0.0, started)
    m = VIP_MOVES.search(output)
    return {
        "requests": len(records), "ok": len(ok), "failed": len(failed),
        "requests_during_rollout": len(during),
        "failed_during_rollout": sum(1 for r in during if not r["ok"]),
        "outcomes": dict(Counter(r["outcome"] for r in records)),
        # The whole command (site.yml: facts, plan, rollout, checks), and the rollout itself as
        # site.yml timed it (from the plan to the VIP back on the primary).
        "rollout_s": round(ended - started, 1),
        "site_rollout_s": int(m.group(3)) if m else None,
        "replaced": re.split(r",\s*", m.group(2).strip()) if m else [],
        "vip_moves": int(m.group(4)) if m else 0,
        "stall_ms": stall_ms,
        "slow_requests": len(slow),
        "slow_at_s": [round(r["t_start"] - started, 1) for r in slow],
        "longest_gap_s": round(gap, 2), "longest_gap_at_s": round(gap_at - started, 1),
        "p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95), "max_ms": max(lat) if lat else None,
        "served_by": dict(Counter(r.get("instance") or "?" for r in ok)),
        "failures": [{"at_s": round(r["t_start"] - started, 1), "outcome": r["outcome"], "reason": r["reason"]}
                     for r in failed][:20],
    }


def summary_line(label, fig, rc):
    return (f"rollout {label}: {'ok' if rc == 0 else f'site.yml rc={rc}'}, failed {fig['failed']} of "
            f"{fig['requests']} requests, site.yml {fig['rollout_s']} s (rollout {fig['site_rollout_s']} s), "
            f"{fig['vip_moves']} VIP moves, "
            f"{fig['slow_requests']} requests over {fig['stall_ms']:.0f} ms, longest gap without an answer "
            f"{fig['longest_gap_s']} s, p50 {fig['p50_ms']} ms p95 {fig['p95_ms']} ms max {fig['max_ms']} ms")


def _ansible_json(args, env):
    # --playbook-dir: the kit's group_vars (playbooks/group_vars) apply as in site.yml.
    out = subprocess.run(["ansible", "--playbook-dir", "playbooks", *args], capture_output=True, text=True,
                         check=True, timeout=120, env=dict(env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"))
    return json.loads(out.stdout)


def from_inventory(extra, out_dir):
    """URL and API contract of the pair, asked of the first node (the contract its checks speak)."""
    env = dict(os.environ)
    host_facts = _ansible_json(["tts_nodes[0]", *extra, "-m", "ansible.builtin.debug", "-a",
                                "msg={{ {'url': tts_ha_entry_url} | to_json }}"], env)
    host, res = next(iter(host_facts["plays"][0]["tasks"][0]["hosts"].items()))
    facts = json.loads(res["msg"])
    api = _ansible_json(["tts_nodes[0]", *extra, "-m", "ansible.builtin.slurp", "-a",
                         "src=/etc/tts-ha/tts-api.json"], env)
    content = api["plays"][0]["tasks"][0]["hosts"][host]["content"]
    api_file = os.path.join(out_dir, "tts-api.json")
    with open(api_file, "w") as f:
        f.write(base64.b64decode(content).decode())
    os.chmod(api_file, 0o600)
    return facts["url"], api_file


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: python -m tts_drill.rollout [options] -- COMMAND ...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--url")
    p.add_argument("--api-file")
    p.add_argument("--from-inventory", action="store_true",
                   help="ask the first node for the URL and contract (ansible, extra args: --ansible-arg)")
    p.add_argument("--ansible-arg", action="append", default=[])
    p.add_argument("--label", default="change")
    p.add_argument("--rate", type=float, default=1.5)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--corpus", choices=("realistic", "rotation"), default="realistic",
                   help="realistic: never-repeated 8-11 word sentences (the drill's); rotation: short ones")
    p.add_argument("--baseline-s", type=float, default=3.0)
    p.add_argument("--after-s", type=float, default=5.0)
    p.add_argument("--max-s", type=float, default=1800.0)
    p.add_argument("--stall-ms", type=float, default=2000.0)
    a = p.parse_args(argv[:cut])
    command = argv[cut + 1:]
    os.makedirs(a.out_dir, exist_ok=True)
    if a.from_inventory:
        a.url, a.api_file = from_inventory(a.ansible_arg, a.out_dir)
    if not a.url or not a.api_file:
        print("--url and --api-file, or --from-inventory, are required", file=sys.stderr)
        return 2
    requests_file = os.path.join(a.out_dir, "requests.jsonl")
    stop_file = os.path.join(a.out_dir, "stop")
    load = subprocess.Popen(
        [sys.executable, "-m", "tts_drill.loadgen", "--url", a.url, "--api-file", a.api_file,
         "--rate", str(a.rate), "--timeout", str(a.timeout), "--duration", str(a.max_s),
         "--out", requests_file, "--stop-file", stop_file, "--corpus", a.corpus]
        + (["--seed", str(a.seed)] if a.corpus == "realistic" else []),
        stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(a.baseline_s)
        started = time.time()
        log_file = os.path.join(a.out_dir, "command.log")
        # command.log streamed (follow it with tail -f); tasks.log: each PLAY/TASK header with the
        # second it began, so a stall in requests.jsonl can be matched with what site.yml did.
        with open(log_file, "w") as log, open(os.path.join(a.out_dir, "tasks.log"), "w") as tasks:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # Bounded even when the command goes silent: killed at --max-s.
            killer = threading.Timer(a.max_s, proc.kill)
            killer.start()
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith(("TASK [", "PLAY [", "RUNNING HANDLER [")):
                    header = line.rstrip(" *\n")
                    tasks.write(f"{time.time() - started:7.1f} {header}\n")
                    tasks.flush()
            proc.wait()
            killer.cancel()
        with open(log_file) as log:
            output = log.read()
        ended = time.time()
        time.sleep(a.after_s)
    finally:
        open(stop_file, "w").close()
        load_summary = load.communicate(timeout=60)[0]
    with open(requests_file) as f:
        records = [json.loads(line) for line in f if line.strip()]
    fig = figures(records, started, ended, output, a.stall_ms)
    result = {"label": a.label, "rc": proc.returncode, "command": command, "url": a.url,
              "settings": {"rate_per_s": a.rate, "timeout_s": a.timeout, "corpus": f"realistic seed {a.seed}" if a.corpus == "realistic" else "rotation",
                           "baseline_s": a.baseline_s, "after_s": a.after_s},
              "figures": fig, "loadgen": (load_summary or "").strip().splitlines()[-1:]}
    with open(os.path.join(a.out_dir, "rollout.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(summary_line(a.label, fig, proc.returncode), flush=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
