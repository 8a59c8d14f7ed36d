"""The README's lab command on the private lab: bad settings, up, site.yml, idempotence."""
import subprocess

import pytest

from conftest import LAB_NAME, deploy, lab_objects, playbook, why

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("bad, names", [
    ({"lab_node_count": 0}, "lab_node_count"),
    ({"lab_vip": "10.9.9.9"}, "lab_vip"),
    ({"lab_subnet": "172.29.78.0/33"}, "lab_subnet"),
    ({"lab_node_addresses": ["172.29.79.5", "172.29.78.12"]}, "lab_node_addresses"),
    ({"lab_vip": "172.29.78.11"}, "lab_vip"),
    ({"lab_state": "sideways"}, "lab_state"),
])
def test_bad_settings_refused_before_anything_is_created(bad, names):
    # Whether the private lab is up or not yet (test modules run in any order): nothing changes.
    before = lab_objects()
    rc, out, _ = playbook("lab.yml", extra_vars=bad, timeout=300)
    assert rc != 0
    assert names in out
    assert lab_objects() == before, f"{bad} changed the lab's objects: {before} -> {lab_objects()}"


def test_up_site_idempotent_and_reachable(lab, site):
    nodes = sorted(h for h in lab_objects()["ps"])
    assert len(nodes) == 2
    for i in (1, 2):
        state = subprocess.run(["docker", "exec", f"{LAB_NAME}-node{i}", "systemctl", "is-system-running"],
                               capture_output=True, text=True).stdout.strip()
        assert state in ("running", "degraded")

    rc, out, recap = site
    assert rc == 0, why(out)
    node_recaps = {h: r for h, r in recap.items() if h.startswith(LAB_NAME)}
    assert set(node_recaps) == {f"{LAB_NAME}-node1", f"{LAB_NAME}-node2"}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values())

    deploy("reference")  # another module may have deployed something else since
    rc, out, recap = playbook("site.yml")
    assert rc == 0, why(out)
    changed = {h: r["changed"] for h, r in recap.items() if r["changed"]}
    assert not changed, f"second site.yml run changed something: {changed}\n{why(out)}"

    rc, out, recap = playbook("lab.yml")
    assert rc == 0 and recap["localhost"]["changed"] == 0, why(out)


@pytest.mark.parametrize("bad, expected", [
    ({"keepalived_vip": "10.9.9.9"}, "keepalived_vip '10.9.9.9' must be an IPv4 address inside the subnet"),
    ({"keepalived_vip": "172.29.78.11"}, "is the address of a node"),
    ({"keepalived_virtual_router_id": 300}, "keepalived_virtual_router_id 300 must be 1-255"),
    ({"keepalived_priority": 100}, "distinct across tts_nodes"),
    ({"keepalived_vrrp_version": 2, "keepalived_advert_int": 1}, "keepalived_auth_pass is unset or a placeholder"),
    ({"keepalived_vrrp_version": 2, "keepalived_advert_int": 0.5, "keepalived_auth_pass": "s3cret"},
     "sub-second adverts need keepalived_vrrp_version 3"),
    ({"keepalived_check_interval": 0.5}, "keepalived_check_interval"),
])
def test_bad_vrrp_settings_refused_before_any_change(site, bad, expected):
    rc, out, recap = playbook("site.yml", extra_vars=bad, timeout=300)
    assert rc != 0
    assert expected in out, why(out)
    assert "PLAY [Docker hosts]" not in out
    assert all(r["changed"] == 0 for r in recap.values())
    assert "PLAY [Validate the network settings]" in out  # refused by the VRRP checks, not earlier
