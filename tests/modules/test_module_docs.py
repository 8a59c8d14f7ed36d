"""Every module of library/: ansible-doc renders it, and its DOCUMENTATION mirrors ARGUMENT_SPEC
(options, suboptions, types, defaults, required, elements, choices), with EXAMPLES and RETURN that
parse. (What only tts_synthesis_check has, mutually exclusive options, is checked in
tests/probe/test_probe_module.py.)"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "library").glob("*.py"))


def load(name):
    # The modules import the kit's module_utils as Ansible ships them to a host (and those import
    # each other by their plain names, as on a host's path).
    if str(ROOT / "module_utils") not in sys.path:
        sys.path.insert(0, str(ROOT / "module_utils"))
    for util in sorted((ROOT / "module_utils").glob("*.py")):
        if f"ansible.module_utils.{util.stem}" not in sys.modules:
            found = importlib.util.spec_from_file_location(f"ansible.module_utils.{util.stem}", util)
            sys.modules[found.name] = importlib.util.module_from_spec(found)
            found.loader.exec_module(sys.modules[found.name])
    spec = importlib.util.spec_from_file_location(name, ROOT / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mirror(doc_options, spec, where):
    assert set(doc_options) == set(spec), where
    for name, arg in spec.items():
        doc = doc_options[name]
        for key, default in (("type", "str"), ("default", None), ("required", False), ("elements", None),
                             ("choices", None)):
            assert doc.get(key, default) == arg.get(key, default), f"{where}.{name}: {key}"
        assert doc["description"], f"{where}.{name}"
        if "options" in arg:
            mirror(doc.get("suboptions", {}), arg["options"], f"{where}.{name}")


@pytest.mark.parametrize("name", MODULES)
def test_documentation_mirrors_the_argument_spec(name):
    module = load(name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == name
    mirror(doc["options"], module.ARGUMENT_SPEC, name)
    assert yaml.safe_load(module.EXAMPLES) and yaml.safe_load(module.RETURN)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name, tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path))
    proc = subprocess.run([str(BIN / "ansible-doc"), "-M", "library", name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    # ansible-doc exits 0 even when it cannot parse the documentation: read what it says.
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    assert f"MODULE {name}" in text
    for option in load(name).ARGUMENT_SPEC:
        # Options are listed as "= name" (required), "- name" or indented, by terminal type.
        assert re.search(rf"^\W*{option}\s", text, re.MULTILINE), f"{name}: {option} not rendered"
