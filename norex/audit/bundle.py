"""One server's audit on disk: report.json, report.md, report.html and the Statement's DSSE envelope beside them.

`norex audit verify` needs only this folder and the auditor's public key: the signature over the Statement,
then every subject the folder holds (the three report files) against its digest, and the report's JSON
against the Statement's predicate. With a checkout of the collection it also compares the roles' files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from norex.audit import render, signing
from norex.audit.evidence import REPORT_FILES, Report, canonical, role_file_digests, sha256_file, statement
from norex.audit.signing import BadEvidence

ENVELOPE = "statement.dsse.json"


def write(report: Report, folder: Path, key: ed25519.Ed25519PrivateKey | None = None, project: Path | None = None):
    """Write the report's three forms and its Statement (signed with key, if given); return the envelope's path."""
    folder.mkdir(parents=True, exist_ok=True)
    forms = {
        "report.json": json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
        "report.md": render.markdown(report),
        "report.html": render.html_page(report),
    }
    for name, text in forms.items():
        (folder / name).write_text(text, encoding="utf-8")
    digests = {name: sha256_file(folder / name) for name in REPORT_FILES}
    body = statement(report, digests, role_file_digests(project))
    envelope = signing.sign(body, key) if key is not None else signing.unsigned(body)
    path = folder / ENVELOPE
    path.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Verified:
    report: Report
    files: int  # report files whose digest matched
    roles: int  # roles' files compared (0 without a checkout)


def verify(envelope_path: Path, public_key: ed25519.Ed25519PublicKey, checkout: Path | None = None) -> Verified:
    """Raise BadEvidence on any mismatch; return what was verified."""
    if envelope_path.is_dir():
        envelope_path = envelope_path / ENVELOPE
    envelope = signing.open_envelope(envelope_path)
    signing.verify_signature(envelope, public_key)
    body = signing.statement_of(envelope)
    folder = envelope_path.parent
    subjects = {s.get("name"): (s.get("digest") or {}).get("sha256") for s in body.get("subject", [])}
    for name in REPORT_FILES:
        if name not in subjects:
            raise BadEvidence(f"the Statement names no {name}")
        if not (folder / name).is_file():
            raise BadEvidence(f"{name} is missing beside {envelope_path.name}")
        if sha256_file(folder / name) != subjects[name]:
            raise BadEvidence(f"{name} does not match its digest in the signed Statement: it was changed")
    try:
        written = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except ValueError:
        raise BadEvidence("report.json is not JSON") from None
    if canonical(written) != canonical(body.get("predicate")):
        raise BadEvidence("report.json is not the signed Statement's predicate")
    roles = 0
    if checkout is not None:
        ours = role_file_digests(checkout)
        signed = {n: d for n, d in subjects.items() if n and n.startswith("collections/")}
        if not signed:
            raise BadEvidence("the Statement names none of the roles' files")
        for name, digest in signed.items():
            if ours.get(name) != digest:
                raise BadEvidence(f"{name} in {checkout} is not the file the audited roles had")
        if set(ours) - set(signed):
            raise BadEvidence(
                f"{checkout} has roles' files the audit did not cover: {sorted(set(ours) - set(signed))[0]}"
            )
        roles = len(signed)
    try:
        report = Report.from_dict(body["predicate"])
    except (KeyError, TypeError, ValueError):
        raise BadEvidence("the Statement's predicate is not a norex audit report") from None
    return Verified(report, len(REPORT_FILES), roles)
