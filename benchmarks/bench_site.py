#!/usr/bin/env python3
"""How long an operator waits for site.yml (issue 17): a script that prints figures, not a test.

    .venv/bin/python benchmarks/bench_site.py [--runs 2] [--fresh] [--top 12] [--json]

Needs the lab's Docker engine (`make lab` or `make images` first) and takes the Docker lock like
every lab run. Measures, on the inventory in ansible.cfg (the lab):

no-op     `ansible-playbook playbooks/site.yml` on a deployed pair with nothing to change, --runs
          times (the first run after a change may still converge: every run must end changed=0
          on every host, or the figure is reported as not a no-op);
fresh     with --fresh: `lab.yml -e lab_state=down`, then `make lab`'s two steps (lab.yml,
          site.yml) with the images already cached; the lab is left deployed.

For the last no-op run it prints the --top slowest tasks (ansible.posix.profile_tasks) and the time
per play, so the cost shows where it sits. Traffic goes only to the lab's own containers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCK = "/tmp/tts-ha-docker.lock"
NOOP_GOAL_S, FRESH_GOAL_S = 30, 180  # issue 17
RUN_TIMEOUT_S = 1800  # one ansible-playbook call; a bare lab bring-up takes ~8 min here
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# profile_tasks: "<task name> ------ 1.23s"
TASK_TIME = re.compile(r"^(.*?)\s-{3,}\s+(\d+\.\d+)s$", re.M)
PLAY = re.compile(r"^PLAY \[(.*)\] \*+$", re.M)
# "... (0:00:01.234)       0:00:12.345 ****": the previous task, then the total so far.
ELAPSED = re.compile(r"\(\d+:\d+:\d+\.\d+\)\s+(\d+):(\d+):(\d+\.\d+)\s")


def playbook(name, *args, profile=False, what=None):
    """Run one playbook under the lab lock; return (seconds, output). A failed run ends the
    benchmark with its output: a figure of a failed run would mean nothing."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    if profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    cmd = ["flock", LOCK, str(BIN / "ansible-playbook"), f"playbooks/{name}", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    out = proc.stdout + proc.stderr
    if proc.returncode:
        sys.exit(f"{what or ' '.join([name, *args])} failed:\n{out[-3000:]}")
    return time.monotonic() - start, out


def recap(out):
    """{host: changed} from the PLAY RECAP."""
    return {m[1]: int(m[3]) for m in RECAP.finditer(out)}


def tasks(out, top):
    """The slowest tasks of a profiled run: [(seconds, name)]."""
    found = [(float(m[2]), m[1].strip()) for m in TASK_TIME.finditer(out)]
    return sorted(found, reverse=True)[:top]


def plays(out):
    """Seconds per play: profile_tasks prints the playbook's elapsed time at every task start and
    in its recap; a play lasts from its first task's start to the next play's first task."""
    starts, current, elapsed = {}, None, 0.0
    for line in out.splitlines():
        play = PLAY.match(line)
        if play:
            current = play[1]
            continue
        stamp = ELAPSED.search(line)
        if stamp:
            elapsed = int(stamp[1]) * 3600 + int(stamp[2]) * 60 + float(stamp[3])
            if current is not None:
                starts.setdefault(current, elapsed)
    bounds = [*starts.values(), elapsed]
    return {name: bounds[i + 1] - begin for i, (name, begin) in enumerate(starts.items())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="no-op reruns (1-5)")
    parser.add_argument("--fresh", action="store_true", help="also time make lab from a removed lab, images cached")
    parser.add_argument("--top", type=int, default=12, help="slowest tasks to list (1-20)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 5:
        parser.error("--runs must be 1-5")
    if not 1 <= args.top <= 20:
        parser.error("--top must be 1-20 (profile_tasks lists the 20 slowest)")
    figures = {}
    if args.fresh:
        playbook("lab.yml", "-e", "lab_state=down")
        lab_s, _ = playbook("lab.yml")
        site_s, _ = playbook("site.yml", what="site.yml (first deploy)")
        figures["fresh"] = {"lab_s": round(lab_s, 1), "site_s": round(site_s, 1),
                            "total_s": round(lab_s + site_s, 1), "goal_s": FRESH_GOAL_S}
    runs = []
    out = ""
    for index in range(args.runs):
        took, out = playbook("site.yml", profile=index == args.runs - 1, what="site.yml (is the lab up? `make lab`)")
        changed = recap(out)
        runs.append({"s": round(took, 1), "changed": changed, "noop": bool(changed) and not any(changed.values())})
    figures["noop"] = {"runs": runs, "goal_s": NOOP_GOAL_S,
                       "slowest_tasks": [{"s": s, "task": name} for s, name in tasks(out, args.top)],
                       "plays_s": {k: round(v, 1) for k, v in plays(out).items()}}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    if "fresh" in figures:
        f = figures["fresh"]
        print(f"make lab, images cached: {f['total_s']} s (lab.yml {f['lab_s']} s + site.yml {f['site_s']} s;"
              f" goal <= {f['goal_s']} s)")
    for i, run in enumerate(runs, 1):
        state = "no-op" if run["noop"] else f"NOT a no-op: changed {run['changed']}"
        print(f"site.yml rerun {i}: {run['s']} s ({state}; goal <= {NOOP_GOAL_S} s)")
    print("time per play (last run):")
    for name, s in figures["noop"]["plays_s"].items():
        print(f"  {s:6.1f} s  {name}")
    print(f"slowest tasks (last run, top {args.top}):")
    for item in figures["noop"]["slowest_tasks"]:
        print(f"  {item['s']:6.2f} s  {item['task']}")


if __name__ == "__main__":
    main()
