"""Ansible module: what a role needs to know of a host before a rerun, read in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tts_ha_host_state
short_description: Read packages, users, systemd units, paths and small files of a host in one call
description:
  - 'Reads, and never changes, what a role''s rerun needs to know to skip the tasks that have
    nothing to do (the package, user, service and wait tasks): whether packages are installed,
    whether users exist, each systemd unit''s active and enabled state, the mode and owner of
    paths, the files a pattern matches and the first line of small files.'
  - One module call costs one connection round trip for all of it, where one task per question
    costs one each.
author:
  - tts-ha maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  packages:
    description: Debian packages (C(dpkg-query)) that must all be installed.
    type: list
    elements: str
    default: []
  users:
    description: User names to look up.
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose state to read (C(systemctl is-active), C(is-enabled)).
    type: list
    elements: str
    default: []
  paths:
    description: Absolute paths whose mode and owner to read.
    type: list
    elements: path
    default: []
  globs:
    description: Absolute shell patterns whose matching regular files to list.
    type: list
    elements: str
    default: []
  first_lines:
    description: Absolute paths of small files whose first line to read (at most 64 characters).
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Read what the host has
  tts_ha_host_state:
    packages: [keepalived, python3]
    users: [keepalived_script]
    units: [keepalived, tts-ha-prober]
    paths: [/etc/docker/daemon.json.d]
    globs: [/etc/docker/daemon.json.d/*.json]
    first_lines: [/run/tts-ha/prober.state]
  register: host_state

- name: Install keepalived only where it is missing
  ansible.builtin.apt:
    name: keepalived
  when: not host_state.packages_installed
"""

RETURN = r"""
packages_installed:
  description: Whether every package of O(packages) is installed (true for an empty list).
  returned: always
  type: bool
packages_missing:
  description: The packages of O(packages) that are not installed, in the order given.
  returned: always
  type: list
  elements: str
users:
  description: Each user of O(users) and whether it exists.
  returned: always
  type: dict
  sample: {keepalived_script: true}
units:
  description: Each unit of O(units) as C(<is-active> <is-enabled>); a unit systemd does not
    know reads C(inactive).
  returned: always
  type: dict
  sample: {keepalived: active enabled, tts-ha-vip-watch: inactive}
paths:
  description: Each path of O(paths) as C(<octal mode> <owner>:<group>), or an empty string when
    it does not exist.
  returned: always
  type: dict
  sample: {/etc/docker/daemon.json.d: "755 root:root"}
globs:
  description: Each pattern of O(globs) and the regular files it matches, sorted.
  returned: always
  type: dict
  sample: {/etc/docker/daemon.json.d/*.json: [/etc/docker/daemon.json.d/10-log.json]}
first_lines:
  description: Each path of O(first_lines) and its first line, or an empty string when it is
    missing, empty or unreadable.
  returned: always
  type: dict
  sample: {/run/tts-ha/prober.state: "1"}
"""

import glob  # noqa: E402
import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def installed(module, packages):
    """The packages dpkg reports as installed (one dpkg-query call for all)."""
    if not packages:
        return set()
    _rc, out, _err = module.run_command(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages])
    found = set()
    for line in out.splitlines():
        name, _, status = line.partition(" ")
        if status == "install ok installed":
            found.add(name.split(":")[0])
    return found


def unit_state(module, unit):
    words = []
    for verb in ("is-active", "is-enabled"):
        _rc, out, _err = module.run_command(["systemctl", verb, unit])
        words.append(out.strip().splitlines()[0] if out.strip() else "")
    return " ".join(w for w in words if w)


def owner_of(uid, table, field):
    try:
        return getattr(table(uid), field)
    except KeyError:
        return str(uid)


def path_state(path):
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return (f"{stat.S_IMODE(st.st_mode):o} {owner_of(st.st_uid, pwd.getpwuid, 'pw_name')}:"
            f"{owner_of(st.st_gid, grp.getgrgid, 'gr_name')}")


def first_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline(64).rstrip("\n")
    except OSError:
        return ""


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


ARGUMENT_SPEC = dict(
    packages=dict(type="list", elements="str", default=[]),
    users=dict(type="list", elements="str", default=[]),
    units=dict(type="list", elements="str", default=[]),
    paths=dict(type="list", elements="path", default=[]),
    globs=dict(type="list", elements="str", default=[]),
    first_lines=dict(type="list", elements="path", default=[]),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    for option in ("paths", "globs", "first_lines"):
        for value in p[option]:
            if not os.path.isabs(value):
                module.fail_json(msg=f"{option}: {value!r} is not an absolute path")
    have = installed(module, p["packages"])
    missing = [name for name in p["packages"] if name not in have]
    module.exit_json(
        changed=False,
        packages_installed=not missing,
        packages_missing=missing,
        users={name: user_exists(name) for name in p["users"]},
        units={unit: unit_state(module, unit) for unit in p["units"]},
        paths={path: path_state(path) for path in p["paths"]},
        globs={pattern: sorted(f for f in glob.glob(pattern) if os.path.isfile(f)) for pattern in p["globs"]},
        first_lines={path: first_line(path) for path in p["first_lines"]},
    )


if __name__ == "__main__":
    main()
