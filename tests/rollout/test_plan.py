"""site.yml's rollout plan (playbooks/filter_plugins/tts_rollout.py): holder last, canary, handover."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("tts_rollout", ROOT / "playbooks/filter_plugins/tts_rollout.py")
tts_rollout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tts_rollout)
plan = tts_rollout.rollout_plan

PAIR = [{"host": "node1", "name": "tts-primary", "profile": "primary", "port": 8000},
        {"host": "node2", "name": "tts-standby", "profile": "standby", "port": 8000}]
BOTH = {"node1": ["tts-primary"], "node2": ["tts-standby"]}
PRESENT = {"node1": True, "node2": True}
VIP = "172.29.82.100"


def test_filter_is_registered():
    assert tts_rollout.FilterModule().filters()["tts_rollout_plan"] is plan


def test_nothing_pending_moves_nothing():
    p = plan(PAIR, {"node1": [], "node2": []}, PRESENT, ["node1"], VIP)
    assert p["mode"] == "none" and not p["handover"] and p["order"] == [] and p["canary"] is None


def test_holder_is_last_whatever_the_inventory_order():
    p = plan(PAIR, BOTH, PRESENT, ["node1"], VIP)
    assert p["mode"] == "rollout" and p["holder"] == "node1"
    assert p["first"] == ["node2"] and p["last"] == ["node1"]
    assert [o["name"] for o in p["order"]] == ["tts-standby", "tts-primary"]
    assert p["canary"] == {"host": "node2", "name": "tts-standby"}
    assert p["handover"] and p["handover_to"] == "node2" and p["primary_host"] == "node1"


def test_vip_on_the_standby_changes_the_primary_first():
    p = plan(PAIR, BOTH, PRESENT, ["node2"], VIP)
    assert p["first"] == ["node1"] and p["last"] == ["node2"]
    assert p["canary"] == {"host": "node1", "name": "tts-primary"}
    assert p["handover_to"] == "node1"


def test_only_the_holder_changes_hands_over_to_an_unchanged_verified_peer():
    p = plan(PAIR, {"node1": ["tts-primary"], "node2": []}, PRESENT, ["node1"], VIP)
    assert p["first"] == [] and p["last"] == ["node1"]
    assert p["canary"] == {"host": "node1", "name": "tts-primary"}
    assert p["handover"] and p["handover_to"] == "node2"


def test_only_the_non_holder_changes_no_handover():
    p = plan(PAIR, {"node1": [], "node2": ["tts-standby"]}, PRESENT, ["node1"], VIP)
    assert p["first"] == ["node2"] and p["last"] == [] and not p["handover"]


def test_first_deploy_or_missing_instance_is_a_plain_deploy():
    p = plan(PAIR, BOTH, {"node1": False, "node2": True}, [], VIP)
    assert p["mode"] == "deploy" and p["order"] == []


def test_rollout_turned_off_is_a_plain_deploy():
    assert plan(PAIR, BOTH, PRESENT, ["node1"], VIP, enabled=False)["mode"] == "deploy"


def test_single_host_standby_first_no_handover():
    single = [{"host": "lab", "name": "tts-primary", "profile": "primary", "port": 8000},
              {"host": "lab", "name": "tts-standby", "profile": "standby", "port": 8001}]
    p = plan(single, {"lab": ["tts-primary", "tts-standby"]}, {"lab": True}, [], "")
    assert p["mode"] == "rollout" and p["holder"] == "lab" and p["last"] == ["lab"]
    assert [o["name"] for o in p["order"]] == ["tts-standby", "tts-primary"]
    assert p["canary"]["name"] == "tts-standby" and not p["handover"]


def test_without_vip_the_primary_node_is_last():
    p = plan(PAIR, BOTH, PRESENT, [], "")
    assert p["holder"] == "node1" and p["first"] == ["node2"] and not p["handover"]


def test_new_api_contract_is_a_plain_deploy():
    p = plan(PAIR, BOTH, PRESENT, ["node1"], VIP, True, True)
    assert p["mode"] == "deploy"
