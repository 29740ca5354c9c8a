#!/usr/bin/python
"""Make a set of systemd units enabled, started, masked, reloaded or restarted, reading their state once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: units
short_description: Bring a set of systemd units to the states given, with one systemctl show for all of them
version_added: 0.1.0
description:
  - Reads every unit's load, active and enablement state with one C(systemctl show), then runs C(systemctl)
    only for what differs. One module run for a role's units instead of one per unit.
  - C(state=reloaded) and C(state=restarted) always act (use them under a condition, e.g. a changed file).
options:
  units:
    description: The units, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit, e.g. C(nftables.service) or C(var-log.mount).
        type: str
        required: true
      enabled:
        description: Enabled (started at boot) or not; omitted leaves it as it is.
        type: bool
      masked:
        description: Masked or not; omitted leaves it as it is.
        type: bool
      state:
        description: C(started), C(stopped), C(reloaded) or C(restarted); omitted leaves it as it is.
        type: str
        choices: [started, stopped, reloaded, restarted]
  daemon_reload:
    description: Run C(systemctl daemon-reload) first.
    type: bool
    default: false
author:
  - NorexVPN
"""

EXAMPLES = r"""
- name: Mount the tmpfs file systems now and at boot
  norex.vpn.units:
    units:
      - {name: var-log.mount, enabled: true, state: started}
      - {name: tmp.mount, enabled: true, state: started}
"""

RETURN = r"""
changed_units:
  description: The units acted on (or, in check mode, that would be), in the order given.
  type: list
  elements: str
  returned: always
status:
  description: Per unit, its ActiveState, UnitFileState and LoadState before any change.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState")


def show(module, names):
    """{name: {property: value}} from one systemctl show (records are separated by a blank line)."""
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=" + ",".join(PROPERTIES), "--", *names], check_rc=False
    )
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed: {err.strip() or rc}")
    records = [r for r in out.strip().split("\n\n") if r.strip()]
    if len(records) != len(names):
        module.fail_json(msg=f"systemctl show gave {len(records)} records for {len(names)} units")
    status = {}
    for name, record in zip(names, records, strict=True):
        fields = dict(line.split("=", 1) for line in record.splitlines() if "=" in line)
        status[name] = {key: fields.get(key, "") for key in PROPERTIES[1:]}
    return status


# Enablement states that need no `systemctl enable` (static and generated units have no [Install]).
ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked", "linked-runtime")


def actions(unit, st):
    """The systemctl verbs this unit needs, in order."""
    todo = []
    state_file = st["UnitFileState"]
    masked = state_file.startswith("masked")
    if unit.get("masked") is True and not masked:
        todo.append("mask")
    elif unit.get("masked") is False and masked:
        todo.append("unmask")
        state_file = "disabled"
    if unit.get("masked") is not True:
        if unit.get("enabled") is True and (state_file not in ENABLED or masked):
            todo.append("enable")
        elif unit.get("enabled") is False and state_file in ("enabled", "enabled-runtime"):
            todo.append("disable")
    state = unit.get("state")
    active = st["ActiveState"] in ("active", "activating", "reloading")
    if state == "started" and not active:
        todo.append("start")
    elif state == "stopped" and active:
        todo.append("stop")
    elif state in ("reloaded", "restarted"):
        todo.append("reload" if state == "reloaded" and active else "restart")
    return todo


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "enabled": {"type": "bool"},
                    "masked": {"type": "bool"},
                    "state": {"type": "str", "choices": ["started", "stopped", "reloaded", "restarted"]},
                },
            },
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    units = module.params["units"]
    if module.params["daemon_reload"] and not module.check_mode:
        module.run_command(["systemctl", "daemon-reload"], check_rc=True)
    status = show(module, [u["name"] for u in units]) if units else {}
    plans = [(u, actions(u, status[u["name"]])) for u in units]
    changed = [u["name"] for u, todo in plans if todo]
    result = {"changed": bool(changed) or (module.params["daemon_reload"]), "changed_units": changed, "status": status}
    if not module.check_mode:
        for unit, todo in plans:
            for verb in todo:
                rc, _, err = module.run_command(["systemctl", verb, "--", unit["name"]], check_rc=False)
                if rc != 0:
                    module.fail_json(msg=f"systemctl {verb} {unit['name']} failed: {err.strip() or rc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
