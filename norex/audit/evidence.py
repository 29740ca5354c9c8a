"""An audit's evidence: the report (what was checked, how, what was seen, the verdict) and an in-toto Statement.

The report is plain data: the collection's version and git commit, the server's identity (machine id, SSH
host key fingerprint), a UTC timestamp and one entry per check. It is written as JSON, Markdown and HTML
(norex.audit.render), and the Statement (in-toto Statement v1) names the server and the digests of those
three files and of the roles' files as its subjects, with the checks as its predicate, so that existing
supply-chain tools can read it. norex.audit.signing wraps it in a signed DSSE envelope.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from norex.project import project_dir

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:norex:no-logs-audit:v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"  # DSSE payload type of an in-toto Statement
VERDICTS = ("pass", "fail", "not applicable")
REPORT_FILES = ("report.json", "report.md", "report.html")
ROLES = Path("collections/ansible_collections/norex/vpn/roles")


@dataclass(frozen=True)
class Check:
    """One check: the sentence of the promise it backs, what it looked at, the command and its (trimmed)
    output as evidence, and a verdict with the reason when it is not a pass."""

    id: str
    claim: str
    looked_at: str
    command: str
    evidence: str
    verdict: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"check {self.id}: verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")


@dataclass(frozen=True)
class Report:
    server: dict[str, str]  # name, machine_id, host_key_sha256
    checks: tuple[Check, ...]
    collection: dict[str, str] = field(default_factory=dict)  # version, commit
    audited_at: str = ""

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    def summary(self) -> dict[str, int]:
        counts = Counter(c.verdict for c in self.checks)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "server": self.server,
            "audited_at": self.audited_at,
            "summary": self.summary(),
            "checks": [asdict(c) for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            server=dict(data["server"]),
            checks=tuple(Check(**c) for c in data["checks"]),
            collection=dict(data.get("collection") or {}),
            audited_at=str(data.get("audited_at") or ""),
        )


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def collection_identity(project: Path | None = None) -> dict[str, str]:
    """The collection's version (galaxy.yml) and the checkout's git commit ("unknown" outside a git checkout)."""
    project = project or project_dir()
    galaxy = yaml.safe_load((project / ROLES.parent / "galaxy.yml").read_text())
    proc = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=10
    )
    commit = proc.stdout.strip() if proc.returncode == 0 else "unknown"
    return {"version": str(galaxy.get("version", "")), "commit": commit}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def role_file_digests(project: Path | None = None) -> dict[str, str]:
    """Path (from the project folder) to SHA-256 of every file of the collection's roles."""
    project = project or project_dir()
    return {
        str(p.relative_to(project)): sha256_file(p)
        for p in sorted((project / ROLES).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def statement(report: Report, report_digests: dict[str, str], roles: dict[str, str]) -> dict[str, Any]:
    """The in-toto Statement v1 of an audit: the server (its host key fingerprint as the digest), the report's
    files and the roles' files as subjects; the checks as the predicate."""
    server = {
        "name": f"server/{report.server.get('name', '')}",
        "digest": {"sha256": report.server.get("host_key_sha256", "")},
        "annotations": {"machine_id": report.server.get("machine_id", "")},
    }
    subjects = [server]
    subjects += [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(report_digests.items())]
    subjects += [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(roles.items())]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": report.to_dict(),
    }


def canonical(data: object) -> bytes:
    """The bytes that are hashed and signed: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
