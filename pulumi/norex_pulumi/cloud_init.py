"""The first-boot cloud-config: make the server forget its first boot, as early as cloud-init allows.

Pure. The document is the same for every customer and holds no secret and nothing about the customer:
Hetzner's metadata service keeps serving user data for the server's whole life, and cloud-init stores
copies of it on disk. Keys are generated on the server by the roles.

Order of events on a stock `debian-12` image (see pulumi/README.md, "The first-boot window"):
systemd starts journald with a persistent journal; cloud-init's first stages log to
/var/log/cloud-init*.log and store the user data under /var/lib/cloud; then `bootcmd` (below) runs,
early in cloud-init's network stage, before SSH keys are installed and before sshd starts.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

HEADER = "#cloud-config\n"
# Hetzner refuses user data above 32 KiB.
MAX_USER_DATA = 32 * 1024

# The same files the no_logs role manages, so that the role takes them over on its first converge.
JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/norex.conf"
CLOUD_INIT_DROPIN = "/etc/cloud/cloud.cfg.d/99-norex-no-logs.cfg"
CLEANUP_UNIT = "norex-first-boot-cleanup.service"
CLOUD_INIT_LOGS = ("/var/log/cloud-init.log", "/var/log/cloud-init-output.log")
SYSLOG_FILES = "/var/log/syslog* /var/log/messages* /var/log/daemon.log* /var/log/user.log* /var/log/debug*"
# What cloud-init keeps of the user data (raw, processed, merged cloud-config, vendor data, scripts).
STORED_USER_DATA = (
    "/var/lib/cloud/instances/*/user-data.txt*",
    "/var/lib/cloud/instances/*/vendor-data*.txt*",
    "/var/lib/cloud/instances/*/*cloud-config.txt",
    "/var/lib/cloud/instances/*/scripts",
    "/var/lib/cloud/instances/*/boothooks",
)
# Everything else cloud-init wrote about this first boot (the pickled datasource still holds the user
# data; cloud-init's later stages of this boot load it, so it goes once they are done).
CLOUD_INIT_STATE = (
    "/var/lib/cloud/instance",
    "/var/lib/cloud/instances",
    "/var/lib/cloud/data",
    "/var/lib/cloud/sem",
    "/var/lib/cloud/handlers",
)

JOURNALD_CONF = """\
# NorexVPN first-boot bootcmd: the journal lives in RAM only (the no_logs role takes this file over).
[Journal]
Storage=volatile
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""

# cloud-init writes no log file: no logging configuration (no /var/log/cloud-init.log), its output to
# /dev/null (no /var/log/cloud-init-output.log), and it creates and chowns no log file. The same settings
# as the no_logs role's 99-norex-no-logs.cfg. In the user data they apply from the moment cloud-init has
# read it, in the same stage that then runs bootcmd; in /etc/cloud they apply to every later stage.
CLOUD_INIT_LOGGING: dict[str, Any] = {
    "log_cfgs": [],
    "def_log_file": "",
    "syslog_fix_perms": [],
    "output": {"all": ">> /dev/null"},
}
CLOUD_INIT_DROPIN_HEADER = "# NorexVPN first-boot bootcmd (the no_logs role takes this file over).\n"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=4096, default_flow_style=False)


def _write(path: str, content: str) -> str:
    """Shell lines writing `content` to `path` through a quoted here-document (nothing is expanded)."""
    if "\nNOREX\n" in f"\n{content}\n":
        raise ValueError(f"the content for {path} would end the here-document")
    directory = path.rsplit("/", 1)[0]
    return f"mkdir -p {directory}\ncat > {path} <<'NOREX'\n{content.rstrip()}\nNOREX\n"


def bootcmd() -> list[str]:
    """The commands cloud-init runs, as one /bin/sh script, in order, not stopping at a failed command."""
    cleanup = f"rm -rf {' '.join(CLOUD_INIT_STATE)} {' '.join(CLOUD_INIT_LOGS)}; fstrim / >/dev/null 2>&1; true"
    return [
        "# 1. The journal: in RAM from now on; remove what this boot already wrote to disk.\n"
        + _write(JOURNALD_DROPIN, JOURNALD_CONF)
        + "systemctl restart systemd-journald.service\n"
        "rm -rf /var/log/journal\n",
        "# 2. A syslog daemon, if the image has one: never started, its files removed.\n"
        "if systemctl cat rsyslog.service >/dev/null 2>&1; then systemctl --no-block mask --now rsyslog.service; fi\n"
        f"rm -f {SYSLOG_FILES}\n",
        "# 3. cloud-init: no log files for the rest of this boot; remove the ones it already wrote.\n"
        + _write(
            CLOUD_INIT_DROPIN,
            "# NorexVPN first-boot bootcmd (the no_logs role takes this file over).\n" + _dump(CLOUD_INIT_LOGGING),
        )
        + f"rm -f {' '.join(CLOUD_INIT_LOGS)}\n",
        "# 4. cloud-init's stored copies of the user data. It never runs again: the roles own the server.\n"
        f"rm -rf {' '.join(STORED_USER_DATA)}\n"
        "mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled\n",
        "# 5. Once cloud-init's later stages of this boot are done, remove all its state and discard freed blocks.\n"
        + shlex.join(
            [
                "systemd-run",
                "--no-block",
                f"--unit={CLEANUP_UNIT}",
                "--property=Type=oneshot",
                "--property=After=cloud-config.service",
                "--property=After=cloud-final.service",
                "/bin/sh",
                "-c",
                cleanup,
            ]
        )
        + "\n",
    ]


def document() -> dict[str, Any]:
    """The cloud-config as data; `bootcmd` first so a reader sees what runs first."""
    return {"bootcmd": bootcmd(), **CLOUD_INIT_LOGGING}


def render() -> str:
    """The user data for every customer server."""
    text = HEADER + _dump(document())
    if len(text.encode()) > MAX_USER_DATA:
        raise ValueError(f"user data is {len(text.encode())} bytes; Hetzner accepts at most {MAX_USER_DATA}")
    return text


def shellify(commands: list[str | list[str]]) -> str:
    """The script cloud-init's bootcmd module runs, built exactly as cloud-init's util.shellify does."""
    content = "#!/bin/sh\n"
    for command in commands:
        if isinstance(command, list | tuple):
            content += " ".join("'{}'".format(str(arg).replace("'", "'\\''")) for arg in command) + "\n"
        elif isinstance(command, str):
            content += command + "\n"
        else:
            raise TypeError(f"bootcmd entries are strings or lists, not {type(command).__name__}")
    return content
