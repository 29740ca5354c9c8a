"""Action plugin of norex.vpn.files: renders each `template` entry on the controller (as the template action does,
with the role's templates folder and ansible_managed), then runs the module once for the whole set."""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import generate_ansible_template_vars

ENTRY_KEYS = {"path", "state", "content", "template", "src", "mode", "owner", "group", "validate", "secret", "keep"}


def _expected(item: dict) -> dict:
    state = item.get("state") or "file"
    out = {"path": item["path"], "state": state}
    if state == "file":
        out |= {"mode": item.get("mode"), "owner": item.get("owner") or "root", "group": item.get("group") or "root"}
        if not item.get("secret") and not item.get("keep"):
            out["sha256"] = hashlib.sha256(str(item.get("content") or "").encode()).hexdigest()
    elif state == "link":
        out["src"] = item.get("src")
    elif state == "directory":
        out |= {"mode": item.get("mode"), "owner": item.get("owner") or "root", "group": item.get("group") or "root"}
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _render(self, template: str, dest: str, task_vars: dict) -> str:
        try:
            source = self._find_needle("templates", template)
        except Exception as exc:
            raise AnsibleActionFail(f"{dest}: template {template} not found: {exc}") from None
        with open(source, encoding="utf-8") as handle:
            data = handle.read()
        # As the template action searches: each search path and its templates/ folder.
        roots = [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]
        searchpath = [path for root in roots for path in (os.path.join(root, "templates"), root)]
        temp_vars = {**task_vars, **generate_ansible_template_vars(template, source, dest)}
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=temp_vars)
        return to_text(templar.do_template(data, preserve_trailing_newlines=True, escape_backslashes=False))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        entries = self._task.args.get("files")
        if not isinstance(entries, list):
            raise AnsibleActionFail("files: expected a list of entries")
        module_entries = []
        for entry in entries:
            if not isinstance(entry, dict) or "path" not in entry:
                raise AnsibleActionFail(f"files: every entry needs a path: {entry!r}")
            unknown = set(entry) - ENTRY_KEYS
            if unknown:
                raise AnsibleActionFail(f"{entry['path']}: unknown keys {sorted(unknown)}")
            item = {k: v for k, v in entry.items() if k != "template"}
            if "template" in entry:
                if "content" in entry:
                    raise AnsibleActionFail(f"{entry['path']}: give a template or a content, not both")
                item["content"] = self._render(entry["template"], entry["path"], task_vars)
            module_entries.append(item)
        result.update(
            self._execute_module(
                module_name="norex.vpn.files",
                module_args={"files": module_entries},
                task_vars=task_vars,
            )
        )
        # What the set should now be on the target, without contents (a digest, none for secret entries), so a
        # test can check the module's work from outside.
        result["expected"] = [_expected(item) for item in module_entries]
        return result
