"""The private test lab, up with the reference deployment, ahead of the lab tests.

    .venv/bin/python tests/lab/boot.py   (scripts/run-tests.sh, with the venv on PATH)

make test (scripts/run-tests.sh) runs this beside the lint, the unit tests and molecule, so that
`pytest -m lab` finds the lab up. The results go to TTS_HA_LAB_BOOT_FILE (a file of that run
only): the `lab` and `site` fixtures take them instead of running the playbooks again, which
would change nothing (about 45 s); the teardown still takes the lab down and checks that nothing
is left. Exit 0 when both playbooks passed; otherwise the cause is printed and the lab tests'
fixtures run them again."""
import json
import sys

from conftest import boot_file, playbook, why


def main():
    results, path = {}, boot_file()
    for name in ("lab.yml", "site.yml"):
        rc, out, recap = results[name] = playbook(name)
        # After each playbook: a failed site.yml still hands over the lab.yml that passed.
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(results, f)
        if rc != 0:
            print(f"{name} failed on the private lab:\n{why(out)}")
            return 1
        print(f"{name}: ok, " + ", ".join(f"{host} changed={r['changed']}" for host, r in sorted(recap.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
