"""An audit's evidence: the report's three forms, the in-toto Statement, its DSSE signature, and verify.

Keys are made with OpenSSL, as an auditor would; the signature is also checked with OpenSSL over the DSSE
pre-authentication encoding, so the envelope is not only readable by our own code."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from norex.audit import bundle, render
from norex.audit.evidence import PREDICATE_TYPE, STATEMENT_TYPE, Check, Report, collection_identity
from norex.audit.signing import BadEvidence, load_private_key, load_public_key
from norex.errors import UsageError
from tests.conftest import REPO

CLAIM = "Nothing on the server records what you do: there is no persisted journal."


def openssl_keypair(folder: Path, name: str = "audit") -> tuple[Path, Path]:
    key, pub = folder / f"{name}.key", folder / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    return key, pub


def sample_report() -> Report:
    return Report(
        server={"name": "c-00000000deadbeef", "machine_id": "0" * 32, "host_key_sha256": "ab" * 32},
        checks=(
            Check("journal.storage", CLAIM, "journald", "systemd-analyze cat-config systemd/journald.conf",
                  "Storage=volatile", "pass"),
            Check("kernel.log_martians", CLAIM, "sysctl", "sysctl net.ipv4.conf.all.log_martians",
                  "<script>alert(1)</script> ```", "not applicable", "a kernel-wide sysctl inside a container"),
            Check("capture.tools", CLAIM, "PATH", "command -v tcpdump", "/usr/sbin/tcpdump", "fail",
                  "tcpdump is installed"),
        ),
        collection=collection_identity(REPO),
        audited_at="2026-12-03T08:00:00Z",
    )  # fmt: skip


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return openssl_keypair(tmp_path)


@pytest.fixture
def signed(tmp_path: Path, keys) -> Path:
    return bundle.write(sample_report(), tmp_path / "out", load_private_key(keys[0]), REPO)


def test_the_statement_is_in_toto_v1_with_the_server_the_reports_and_the_roles(signed: Path) -> None:
    envelope = json.loads(signed.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json" and len(envelope["signatures"]) == 1
    body = json.loads(base64.b64decode(envelope["payload"]))
    assert body["_type"] == STATEMENT_TYPE and body["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in body["subject"]]
    assert names[0] == "server/c-00000000deadbeef" and body["subject"][0]["digest"] == {"sha256": "ab" * 32}
    assert {"report.json", "report.md", "report.html"} <= set(names)
    assert "collections/ansible_collections/norex/vpn/roles/agent/files/norex_agent.py" in names
    assert body["predicate"]["summary"] == {"pass": 1, "fail": 1, "not applicable": 1}
    assert len(body["predicate"]["collection"]["commit"]) == 40


def test_openssl_verifies_the_dsse_signature(signed: Path, keys, tmp_path: Path) -> None:
    envelope = json.loads(signed.read_text())
    payload, kind = base64.b64decode(envelope["payload"]), envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    (tmp_path / "pae").write_bytes(pae)
    (tmp_path / "sig").write_bytes(base64.b64decode(envelope["signatures"][0]["sig"]))
    argv = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(keys[1]), "-rawin", "-in", str(tmp_path / "pae")]
    assert subprocess.run([*argv, "-sigfile", str(tmp_path / "sig")], capture_output=True).returncode == 0
    (tmp_path / "pae").write_bytes(pae.replace(b'"fail"', b'"pass"'))
    assert subprocess.run([*argv, "-sigfile", str(tmp_path / "sig")], capture_output=True).returncode != 0


def test_verify_passes_the_untouched_report_with_only_the_public_key(signed: Path, keys) -> None:
    verified = bundle.verify(signed.parent, load_public_key(keys[1]))
    assert verified.files == 3 and verified.roles == 0 and len(verified.report.failed) == 1
    with_roles = bundle.verify(signed, load_public_key(keys[1]), checkout=REPO)
    assert with_roles.roles > 20


@pytest.mark.parametrize("name", ["report.json", "report.md", "report.html"])
def test_verify_catches_a_changed_report_file(signed: Path, keys, name: str) -> None:
    path = signed.parent / name
    path.write_text(path.read_text().replace("fail", "pass"))
    with pytest.raises(BadEvidence, match=f"{name} does not match"):
        bundle.verify(signed.parent, load_public_key(keys[1]))


def test_verify_catches_a_rewritten_statement_and_another_key(signed: Path, keys, tmp_path: Path) -> None:
    envelope = json.loads(signed.read_text())
    body = json.loads(base64.b64decode(envelope["payload"]))
    body["predicate"]["checks"][2]["verdict"] = "pass"
    envelope["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    signed.write_text(json.dumps(envelope))
    with pytest.raises(BadEvidence, match="signature does not verify"):
        bundle.verify(signed, load_public_key(keys[1]))
    _, other = openssl_keypair(tmp_path, "other")
    fresh = bundle.write(sample_report(), tmp_path / "again", load_private_key(keys[0]), REPO)
    with pytest.raises(BadEvidence, match="signature does not verify"):
        bundle.verify(fresh, load_public_key(other))


def test_an_unsigned_report_does_not_verify(tmp_path: Path, keys) -> None:
    path = bundle.write(sample_report(), tmp_path / "plain", None, REPO)
    with pytest.raises(BadEvidence, match="not signed"):
        bundle.verify(path, load_public_key(keys[1]))


def test_a_changed_role_file_is_caught_with_a_checkout(signed: Path, keys, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "collections", checkout / "collections", ignore=shutil.ignore_patterns("__pycache__"))
    task = checkout / "collections/ansible_collections/norex/vpn/roles/no_logs/tasks/main.yml"
    task.write_text(task.read_text() + "\n# changed\n")
    with pytest.raises(BadEvidence, match=r"no_logs/tasks/main.yml in .* is not the file"):
        bundle.verify(signed, load_public_key(keys[1]), checkout=checkout)


def test_bad_keys_are_one_line_errors(tmp_path: Path, keys) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    for load in (load_private_key, load_public_key):
        with pytest.raises(UsageError) as caught:
            load(junk)
        assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        load_private_key(keys[1])
    with pytest.raises(UsageError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")


def test_markdown_and_html_carry_every_check_and_escape_the_evidence() -> None:
    report = sample_report()
    md, page = render.markdown(report), render.html_page(report)
    for check in report.checks:
        assert check.id in md and check.id in page and check.command in md
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "````\n<script>alert(1)</script> ```\n````" in md  # a fence longer than the evidence's backticks
    assert "1 pass, 1 fail, 1 not applicable" in md and "1 pass, 1 fail, 1 not applicable" in page


def test_a_verdict_outside_the_three_is_refused() -> None:
    with pytest.raises(ValueError, match="verdict 'ok'"):
        Check("x", CLAIM, "x", "x", "x", "ok")
