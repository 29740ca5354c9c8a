"""Entries for norex.vpn.files and norex.vpn.units built from a list of paths or unit names."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def entries(values, key: str = "path", mirror_template: bool = False, **attributes) -> list[dict]:
    """[{key: value, **attributes} for value in values]; with mirror_template each gets the template that mirrors
    its path (/etc/x.conf -> etc/x.conf.j2), as the roles' templates folders are laid out."""
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise AnsibleFilterError("entries expects a list of strings")
    out = []
    for value in values:
        entry = {key: value, **attributes}
        if mirror_template:
            entry["template"] = value.lstrip("/") + ".j2"
        out.append(entry)
    return out


class FilterModule:
    """Helpers for norex.vpn.files and norex.vpn.units."""

    def filters(self):
        return {"entries": entries}
