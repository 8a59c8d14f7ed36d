"""make lab-down on the private lab leaves nothing behind (runs last: files are ordered)."""
import pytest

from conftest import lab_objects, playbook, why

pytestmark = pytest.mark.lab


def test_down_leaves_nothing(lab):
    rc, out, _ = playbook("lab.yml", extra_vars={"lab_state": "down"})
    assert rc == 0, why(out)
    assert lab_objects() == {"ps": [], "network": [], "volume": []}
    # down twice is fine and changes nothing
    rc, out, recap = playbook("lab.yml", extra_vars={"lab_state": "down"})
    assert rc == 0 and recap["localhost"]["changed"] == 0
