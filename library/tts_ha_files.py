"""Ansible module: a role's small files and directories on a host, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tts_ha_files
short_description: Put a set of directories and small text files in place in one call
description:
  - 'Puts every entry of O(files) in place: a directory with its mode and owner, or a file with
    the given content (rendered on the controller, for example with C(lookup(''template'', ...)))
    and its mode and owner.'
  - A rerun with nothing to change costs one module call for the whole set, where one
    C(ansible.builtin.copy) or C(ansible.builtin.template) task per file costs two (stat, then
    file) and one connection round trip each.
  - Files are written atomically (a temporary file in the same directory, then a rename).
  - Directories are handled before files, in the order given, so a file may go into a directory
    of the same call.
author:
  - tts-ha maintainers (!UNKNOWN)
notes:
  - Meant for configuration and unit files of a few kilobytes; large or binary files belong to
    C(ansible.builtin.copy).
  - There is no C(validate); a file that needs a validation command keeps its own task.
attributes:
  check_mode:
    support: full
    details: Reports what would change and writes nothing.
  diff_mode:
    support: full
    details: One diff per changed file (content) and per changed attribute.
  platform:
    platforms: posix
options:
  files:
    description: The directories and files, each once.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the directory or file. The same entry may appear twice (it
          is handled once); one path with two different settings is refused.
        type: path
        required: true
      state:
        description: V(directory) or V(file).
        type: str
        choices: [directory, file]
        default: file
      content:
        description: The whole content of a file (required with O(files[].state=file)).
        type: str
      mode:
        description: Octal mode as a string, for example V("0640").
        type: str
        required: true
      owner:
        description: Owner name.
        type: str
        default: root
      group:
        description: Group name.
        type: str
        default: root
"""

EXAMPLES = r"""
- name: Put the unit and its settings in place
  tts_ha_files:
    files:
      - {path: /etc/tts-ha, state: directory, mode: "0755"}
      - path: /etc/tts-ha/prober.json
        content: "{{ settings | to_nice_json }}\n"
        group: keepalived_script
        mode: "0640"
      - path: /etc/systemd/system/tts-ha-prober.service
        content: "{{ lookup('ansible.builtin.template', 'tts-ha-prober.service.j2') }}"
        mode: "0644"
  register: files_written

- name: Restart the prober when its unit changed
  ansible.builtin.systemd_service:
    name: tts-ha-prober
    state: restarted
    daemon_reload: true
  when: "'/etc/systemd/system/tts-ha-prober.service' in files_written.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: The paths created or changed (content, mode or owner), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/tts-ha/prober.json]
"""

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402

ENTRY_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["directory", "file"], default="file"),
    content=dict(type="str"),
    mode=dict(type="str", required=True),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
)
ARGUMENT_SPEC = dict(files=dict(type="list", elements="dict", required=True, options=ENTRY_SPEC))


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(path, data):
    fd, tmp = tempfile.mkstemp(prefix=".tts-ha-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    files, seen = [], {}
    for entry in module.params["files"]:
        if not os.path.isabs(entry["path"]):
            module.fail_json(msg=f"files: {entry['path']!r} is not an absolute path")
        # Two settings may name one directory (the same entry twice): once is enough; two
        # different wishes for one path are a mistake.
        if entry["path"] in seen:
            if seen[entry["path"]] != entry:
                module.fail_json(msg=f"files: {entry['path']!r} is listed twice with different settings")
            continue
        seen[entry["path"]] = entry
        files.append(entry)
        if entry["state"] == "file" and entry["content"] is None:
            module.fail_json(msg=f"files: {entry['path']!r} is a file without content")
        if entry["state"] == "directory" and entry["content"] is not None:
            module.fail_json(msg=f"files: {entry['path']!r} is a directory with content")

    changed_paths, diffs = [], []
    ordered = [e for e in files if e["state"] == "directory"] + [e for e in files if e["state"] == "file"]
    for entry in ordered:
        path = entry["path"]
        changed = False
        if entry["state"] == "directory":
            if os.path.exists(path) and not os.path.isdir(path):
                module.fail_json(msg=f"files: {path} exists and is not a directory")
            if not os.path.isdir(path):
                diffs.append({"before_header": path, "before": {"state": "absent"},
                              "after_header": path, "after": {"state": "directory"}})
                changed = True
                if not module.check_mode:
                    os.makedirs(path)
        else:
            data = to_bytes(entry["content"])
            before = _read(path)
            if before != data:
                diffs.append({"before_header": path, "after_header": path,
                              "before": "" if before is None else before.decode("utf-8", "replace"),
                              "after": entry["content"]})
                changed = True
                if not module.check_mode:
                    if not os.path.isdir(os.path.dirname(path)):
                        module.fail_json(msg=f"files: the directory of {path} does not exist")
                    _write(path, data)
        if os.path.exists(path):
            diff = {"before": {}, "after": {}}
            if module.set_fs_attributes_if_different(
                    module.load_file_common_arguments(entry, path=path), False, diff=diff):
                changed = True
                if diff["before"]:
                    diffs.append(dict(diff, before_header=path, after_header=path))
        if changed:
            changed_paths.append(path)

    result = dict(changed=bool(changed_paths), changed_paths=changed_paths)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
