#!/usr/bin/python
"""Make a set of files, links and directories be exactly as given, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Make a set of files, links and directories be what is given, in one module run
version_added: 0.1.0
description:
  - Compares every entry with the target by content checksum, mode, owner and group, and writes only what
    differs, each file atomically (temporary file in the same folder, fsync, rename), after its C(validate)
    command accepted the new content.
  - One module run for a role's whole set of files instead of a C(stat) and a C(copy) per file. Use it through
    the action plugin of the same name, which renders C(template) entries on the controller.
  - Every validate command runs before anything is written, so a set is written whole or not at all.
options:
  files:
    description: The entries, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the target.
        type: path
        required: true
      state:
        description: C(file), C(link), C(directory) or C(absent).
        type: str
        default: file
        choices: [file, link, directory, absent]
      content:
        description: The file's content (C(state=file)); the action plugin fills it from C(template).
        type: str
      src:
        description: Where a link points (C(state=link)).
        type: str
      mode:
        description: Octal mode, e.g. C("0644") (not for links).
        type: str
      owner:
        description: User name (default root).
        type: str
        default: root
      group:
        description: Group name (default root).
        type: str
        default: root
      validate:
        description: Command run on the new content before it is written; C(%s) is the temporary file's path.
        type: str
      secret:
        description: Never show the content in a diff (key material).
        type: bool
        default: false
      keep:
        description: Leave a file that exists as it is (write it only when it is missing).
        type: bool
        default: false
author:
  - NorexVPN
"""

EXAMPLES = r"""
- name: Keep the journal in memory only
  norex.vpn.files:
    files:
      - path: /etc/systemd/journald.conf.d/norex.conf
        template: etc/systemd/journald.conf.d/norex.conf.j2
        mode: "0644"
      - path: /var/log/wtmp
        state: link
        src: /dev/null
"""

RETURN = r"""
changed_paths:
  description: The paths that were (or in check mode would be) changed, in the order given.
  type: list
  elements: str
  returned: always
"""

import contextlib
import grp
import hashlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DIFF_MAX = 64 * 1024


def _ids(entry):
    return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid


def _mode(entry):
    return int(entry["mode"], 8) if entry.get("mode") else None


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _attributes_differ(st, entry):
    uid, gid = _ids(entry)
    mode = _mode(entry)
    return (st.st_uid, st.st_gid) != (uid, gid) or (mode is not None and stat.S_IMODE(st.st_mode) != mode)


def _current_content(path):
    with open(path, "rb") as handle:
        return handle.read()


def plan(entry):
    """What must happen to one entry: a list of actions ('write', 'attrs', 'link', 'mkdir', 'remove')."""
    path, state = entry["path"], entry["state"]
    st = _lstat(path)
    if state == "absent":
        return ["remove"] if st is not None else []
    if state == "link":
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == entry["src"]:
            return []
        return ["link"]
    if state == "directory":
        if st is None or not stat.S_ISDIR(st.st_mode):
            return ["mkdir"]
        return ["attrs"] if _attributes_differ(st, entry) else []
    data = (entry.get("content") or "").encode()
    if st is None or not stat.S_ISREG(st.st_mode):
        return ["write"]
    if entry.get("keep"):
        return []
    if hashlib.sha256(_current_content(path)).digest() != hashlib.sha256(data).digest():
        return ["write"]
    return ["attrs"] if _attributes_differ(st, entry) else []


def _temp_file(entry):
    folder = os.path.dirname(entry["path"])
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".norex-files.")
    with os.fdopen(fd, "wb") as handle:
        handle.write((entry.get("content") or "").encode())
        handle.flush()
        os.fsync(handle.fileno())
    uid, gid = _ids(entry)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, _mode(entry) if _mode(entry) is not None else 0o644)
    return tmp


def _validate(module, entry, tmp):
    command = entry["validate"]
    if "%s" not in command:
        module.fail_json(msg=f"{entry['path']}: validate must contain %s")
    argv = [part.replace("%s", tmp) for part in shlex.split(command)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = lines[0] if lines else f"exit {proc.returncode}"
        module.fail_json(msg=f"{entry['path']}: {argv[0]} refused the new content: {reason}")


def _diff(entry, actions):
    if entry.get("secret") or "write" not in actions:
        return {"before_header": entry["path"], "after_header": entry["path"], "before": "", "after": ""}
    path = entry["path"]
    before = ""
    if os.path.isfile(path) and os.path.getsize(path) <= DIFF_MAX:
        before = _current_content(path).decode(errors="replace")
    after = entry.get("content") or ""
    return {"before_header": path, "after_header": path, "before": before, "after": after[:DIFF_MAX]}


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {"type": "str", "default": "file", "choices": ["file", "link", "directory", "absent"]},
                    "content": {"type": "str", "no_log": False},
                    "src": {"type": "str"},
                    "mode": {"type": "str"},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "validate": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                    "keep": {"type": "bool", "default": False},
                },
            }
        },
        supports_check_mode=True,
    )
    entries = module.params["files"]
    for entry in entries:
        if not os.path.isabs(entry["path"]):
            module.fail_json(msg=f"{entry['path']}: not an absolute path")
        if entry["state"] == "link" and not entry.get("src"):
            module.fail_json(msg=f"{entry['path']}: a link needs src")
    plans = [(entry, plan(entry)) for entry in entries]
    changed = [(entry, actions) for entry, actions in plans if actions]
    result = {"changed": bool(changed), "changed_paths": [entry["path"] for entry, _ in changed]}
    if module._diff:
        result["diff"] = [_diff(entry, actions) for entry, actions in changed]
    if module.check_mode or not changed:
        module.exit_json(**result)

    staged = []
    try:
        # Every new file is staged and validated before anything is replaced.
        for entry, actions in changed:
            if "write" in actions:
                tmp = _temp_file(entry)
                staged.append((entry, tmp))
                if entry.get("validate"):
                    _validate(module, entry, tmp)
        for entry, tmp in staged:
            os.replace(tmp, entry["path"])
        staged = []
        for entry, actions in changed:
            path = entry["path"]
            if "remove" in actions:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            elif "link" in actions:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.unlink(path)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(entry["src"], path)
            elif "mkdir" in actions:
                # A file staged below it may have made it already.
                if os.path.lexists(path) and not os.path.isdir(path):
                    os.unlink(path)
                os.makedirs(path, exist_ok=True)
            if actions and actions[0] in ("attrs", "mkdir"):
                uid, gid = _ids(entry)
                os.chown(path, uid, gid)
                if _mode(entry) is not None:
                    os.chmod(path, _mode(entry))
    finally:
        for _, tmp in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
