"""The first-boot cloud-config: valid YAML, bootcmd first, what it does and in which order, no secrets."""

from __future__ import annotations

import configparser
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PULUMI = REPO / "pulumi"
sys.path[:0] = [str(PULUMI), str(PULUMI / "policy")]
cloud_init = importlib.import_module("norex_pulumi.cloud_init")
policies = importlib.import_module("norex_policies")


def script() -> str:
    return cloud_init.shellify(yaml.safe_load(cloud_init.render())["bootcmd"])


def heredoc(path: str) -> str:
    match = re.search(rf"cat > {re.escape(path)} <<'NOREX'\n(.*?)\nNOREX\n", script(), re.S)
    assert match, f"no here-document for {path}"
    return match.group(1)


def test_valid_cloud_config_with_bootcmd_first():
    text = cloud_init.render()
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    assert next(iter(document)) == "bootcmd"
    assert text.splitlines()[1] == "bootcmd:"
    assert all(isinstance(command, str) for command in document["bootcmd"])
    assert set(document) == {"bootcmd", "log_cfgs", "def_log_file", "syslog_fix_perms", "output"}
    assert len(text.encode()) < cloud_init.MAX_USER_DATA


def test_the_bootcmd_script_is_valid_shell():
    result = subprocess.run(["sh", "-n"], input=script(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_order_journal_first_then_cloud_init_logs_then_its_copies():
    text = script()
    steps = [
        "Storage=volatile",
        "systemctl restart systemd-journald.service",
        "rm -rf /var/log/journal",
        "rm -f /var/log/cloud-init.log /var/log/cloud-init-output.log",
        "rm -rf /var/lib/cloud/instances/*/user-data.txt*",
        "touch /etc/cloud/cloud-init.disabled",
        "systemd-run --no-block --unit=norex-first-boot-cleanup.service",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions), steps


def test_journald_is_made_volatile():
    conf = configparser.ConfigParser()
    conf.read_string(heredoc(cloud_init.JOURNALD_DROPIN))
    assert conf["Journal"]["Storage"] == "volatile"
    assert conf["Journal"]["ForwardToSyslog"] == "no"


def test_cloud_init_writes_no_log_file_now_and_for_the_rest_of_the_boot():
    dropin = yaml.safe_load(heredoc(cloud_init.CLOUD_INIT_DROPIN))
    document = yaml.safe_load(cloud_init.render())
    expected = {"log_cfgs": [], "def_log_file": "", "syslog_fix_perms": [], "output": {"all": ">> /dev/null"}}
    assert dropin == expected
    assert {k: v for k, v in document.items() if k != "bootcmd"} == expected


def test_the_same_files_and_settings_as_the_no_logs_role():
    """The role takes over the files bootcmd writes on its first converge; they must agree."""
    role = REPO / "collections/ansible_collections/norex/vpn/roles/no_logs"
    tasks = "\n".join(p.read_text() for p in (role / "tasks").glob("*.yml"))
    assert f"path: {cloud_init.JOURNALD_DROPIN}" in tasks
    assert f"path: {cloud_init.CLOUD_INIT_DROPIN}" in tasks
    template = (role / "templates" / cloud_init.CLOUD_INIT_DROPIN.lstrip("/")).with_suffix(".cfg.j2").read_text()
    settings = yaml.safe_load("\n".join(line for line in template.splitlines() if "{{" not in line))
    assert settings == cloud_init.CLOUD_INIT_LOGGING


def test_stored_user_data_and_state_are_removed():
    text = script()
    for pattern in ("user-data.txt*", "vendor-data*.txt*", "*cloud-config.txt", "scripts", "boothooks"):
        assert f"/var/lib/cloud/instances/*/{pattern}" in text
    cleanup = text[text.index("systemd-run") :]
    assert "--property=After=cloud-final.service" in cleanup and "--property=Type=oneshot" in cleanup
    for path in (
        "/var/lib/cloud/instance ",
        "/var/lib/cloud/instances ",
        "/var/lib/cloud/data ",
        "/var/log/cloud-init.log",
    ):
        assert path in cleanup


def test_no_secret_and_nothing_about_the_customer():
    text = cloud_init.render()
    assert policies.find_secrets(text) == []
    assert policies.find_personal_data(text) == []
    assert inspect.signature(cloud_init.render).parameters == {}, "user data must not depend on the customer"
    assert cloud_init.render() == text


def test_the_secret_detectors_do_detect():
    """A positive control, so that an empty result above means something."""
    key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
    samples = {
        "a private key block": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "a WireGuard private or preshared key": "PrivateKey = x",
        "a WireGuard-style key": f"wg: {key}",
        "a Stripe secret": "sk_live_51Habcdefghijkl",
        "an API token": "a" * 64,
        "a password setting": "chpasswd:\n  list: root:x",
        "cloud-init host keys": "ssh_keys:\n  ed25519_private: x",
        "a credential assignment": "token: abc",
    }
    for what, sample in samples.items():
        assert what in policies.find_secrets(cloud_init.render() + sample + "\n"), what
    assert policies.find_personal_data("alice@example.com cus_Q9x8ABCdef1234") == ["an email address", "a Stripe id"]


def test_shellify_quotes_list_entries_as_cloud_init_does():
    assert cloud_init.shellify(["echo a", ["printf", "%s", "it's"]]) == "#!/bin/sh\necho a\n'printf' '%s' 'it'\\''s'\n"
