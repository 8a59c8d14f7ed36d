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
RUN_TIMEOUT_S = 1800  # one ansible-playbook call; a bare lab bring-up takes ~8 min here
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# profile_tasks: "<task name> ------ 1.23s"
TASK_TIME = re.compile(r"^(.*?)\s-{3,}\s+(\d+\.\d+)s$", re.M)
PLAY = re.compile(r"^PLAY \[(.*)\] \*+$", re.M)
# "... (0:00:01.234)       0:00:12.345 ****": the previous task, then the total so far.
ELAPSED = re.compile(r"\(\d+:\d+:\d+\.\d+\)\s+(\d+):(\d+):(\d+\.\d+)\s")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def playbook(name, *args, profile=False):
    """Run one playbook under the lab lock; return (seconds, rc, output)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    if profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "200"
    cmd = ["flock", LOCK, str(BIN / "ansible-playbook"), f"playbooks/{name}", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return time.monotonic() - start, proc.returncode, ANSI.sub("", proc.stdout + proc.stderr)


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
    starts, current, seen = [], None, set()
    for line in out.splitlines():
        play = PLAY.match(line)
        if play:
            current = play[1]
            continue
        stamp = ELAPSED.search(line)
        if stamp and current is not None and current not in seen:
            seen.add(current)
            starts.append((current, int(stamp[1]) * 3600 + int(stamp[2]) * 60 + float(stamp[3])))
    ends = [t for _, t in starts[1:]]
    last = [int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) for m in ELAPSED.finditer(out)]
    ends.append(last[-1] if last else 0.0)
    result = {}
    for (name, begin), end_s in zip(starts, ends):
        result[name] = result.get(name, 0.0) + end_s - begin
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="no-op reruns (1-5)")
    parser.add_argument("--fresh", action="store_true", help="also time make lab from a removed lab, images cached")
    parser.add_argument("--top", type=int, default=12, help="slowest tasks to list")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 5:
        parser.error("--runs must be 1-5")
    figures = {}
    if args.fresh:
        took, rc, out = playbook("lab.yml", "-e", "lab_state=down")
        if rc:
            sys.exit(f"lab.yml -e lab_state=down failed:\n{out[-3000:]}")
        lab_s, rc, out = playbook("lab.yml")
        if rc:
            sys.exit(f"lab.yml failed:\n{out[-3000:]}")
        site_s, rc, out = playbook("site.yml")
        if rc:
            sys.exit(f"site.yml (first deploy) failed:\n{out[-3000:]}")
        figures["fresh"] = {"lab_s": round(lab_s, 1), "site_s": round(site_s, 1),
                            "total_s": round(lab_s + site_s, 1), "goal_s": 180}
    runs = []
    out = ""
    for index in range(args.runs):
        took, rc, out = playbook("site.yml", profile=index == args.runs - 1)
        if rc:
            sys.exit(f"site.yml failed (is the lab up? `make lab`):\n{out[-3000:]}")
        changed = recap(out)
        runs.append({"s": round(took, 1), "changed": changed, "noop": bool(changed) and not any(changed.values())})
    figures["noop"] = {"runs": runs, "goal_s": 30,
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
        print(f"site.yml rerun {i}: {run['s']} s ({state}; goal <= 30 s)")
    print("time per play (last run):")
    for name, s in figures["noop"]["plays_s"].items():
        print(f"  {s:6.1f} s  {name}")
    print(f"slowest tasks (last run, top {args.top}):")
    for item in figures["noop"]["slowest_tasks"]:
        print(f"  {item['s']:6.2f} s  {item['task']}")


if __name__ == "__main__":
    main()
