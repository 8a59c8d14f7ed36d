"""The private test lab, up with the reference deployment, ahead of the lab tests.

    .venv/bin/python tests/lab/boot.py   (scripts/run-tests.sh, with the venv on PATH)

make test (scripts/run-tests.sh) runs this beside the lint, the unit tests and molecule, so that
`pytest -m lab` finds the lab up: its fixtures still run lab.yml and site.yml, which then change
nothing, and its teardown still takes the lab down and checks that nothing is left. Exit 0 when
both playbooks passed; otherwise the cause is printed and the lab tests will try again."""
import sys

from conftest import playbook, why


def main():
    for name in ("lab.yml", "site.yml"):
        rc, out, recap = playbook(name)
        if rc != 0:
            print(f"{name} failed on the private lab:\n{why(out)}")
            return 1
        print(f"{name}: ok, " + ", ".join(f"{host} changed={r['changed']}" for host, r in sorted(recap.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
