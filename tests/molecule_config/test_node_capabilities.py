"""The lab node's capability list has one home (roles/lab/vars/main.yml): every molecule platform
gets it through the Makefile's TTS_HA_NODE_CAPABILITIES, interpolated by molecule itself."""
import subprocess
from pathlib import Path

import pytest
import yaml
from molecule import interpolation

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(ROOT.glob("molecule/*/molecule.yml"))


def lab_capabilities():
    return yaml.safe_load((ROOT / "roles/lab/vars/main.yml").read_text())["lab_node_capabilities"]


def makefile_value():
    out = subprocess.run(["make", "-s", "--no-print-directory", "--eval",
                          'show-caps: ; @printf "%s" "$$TTS_HA_NODE_CAPABILITIES"', "show-caps"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout


def molecule_platforms(path, env):
    """molecule.yml as molecule reads it: interpolated with the environment, then parsed."""
    text = interpolation.Interpolator(interpolation.TemplateWithDefaults, env).interpolate(path.read_text())
    return yaml.safe_load(text)["platforms"]


def test_the_makefile_exports_the_lab_list():
    caps = lab_capabilities()
    assert "SYS_RESOURCE" not in caps and "SYS_ADMIN" in caps and len(caps) > 30
    assert yaml.safe_load(makefile_value()) == caps


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.parent.name)
def test_every_platform_gets_the_one_list(path):
    env = {"TTS_HA_NODE_CAPABILITIES": makefile_value()}
    platforms = molecule_platforms(path, env)
    assert platforms
    for platform in platforms:
        assert platform["capabilities"] == lab_capabilities(), platform["name"]
    assert "SYS_ADMIN" not in path.read_text(), "a capability list written out again"


@pytest.mark.parametrize("path", SCENARIOS[:1], ids=lambda p: p.parent.name)
def test_molecule_without_the_makefile_names_the_problem(path):
    # docker refuses the placeholder capability with its name in the error.
    platform = molecule_platforms(path, {})[0]
    assert platform["capabilities"] == ["TTS_HA_NODE_CAPABILITIES_unset__run_molecule_through_make"]
