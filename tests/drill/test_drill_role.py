"""The tts_drill role's argument specs mirror its defaults: every default is an option of at least
one entry point, every option is a default, and each entry point the playbooks call has a spec."""
import re

import yaml
from tts_drill_testlib import REPO

ROLE = REPO / "roles" / "tts_drill"


def test_every_default_is_an_option_and_every_option_a_default():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = set().union(*(set(entry["options"]) for entry in specs.values()))
    assert not set(defaults) - options, sorted(set(defaults) - options)
    assert not options - set(defaults), sorted(options - set(defaults))


def test_every_entry_point_the_playbooks_call_has_a_spec():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    called = set()
    for playbook in (REPO / "playbooks").glob("*.yml"):
        text = playbook.read_text()
        for block in re.findall(r"name: tts_drill\n\s+tasks_from: (\w+)", text):
            called.add(block)
    assert called == {"node_preflight", "failover", "failback", "soak", "capacity"}, called
    assert called <= set(specs), called - set(specs)
    assert all((ROLE / "tasks" / f"{name}.yml").exists() for name in called)
