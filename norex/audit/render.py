"""An audit report for people: Markdown and HTML with the same content (the JSON is the report itself)."""

from __future__ import annotations

import html
import re

from norex.audit.evidence import Report

MARK = {"pass": "PASS", "fail": "FAIL", "not applicable": "N/A"}


def _header(report: Report) -> list[tuple[str, str]]:
    s = report.summary()
    return [
        ("Server", report.server.get("name", "")),
        ("Machine id", report.server.get("machine_id", "")),
        ("SSH host key (SHA-256)", report.server.get("host_key_sha256", "")),
        ("Audited at (UTC)", report.audited_at),
        ("Collection", f"norex.vpn {report.collection.get('version', '')} ({report.collection.get('commit', '')})"),
        ("Verdicts", f"{s['pass']} pass, {s['fail']} fail, {s['not applicable']} not applicable"),
    ]


def _fence(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in text."""
    return "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)


def markdown(report: Report) -> str:
    lines = [f"# No-logs audit of {report.server.get('name', '')}", ""]
    lines += [f"- **{label}**: {value}" for label, value in _header(report)]
    for check in report.checks:
        lines += ["", f"## {MARK[check.verdict]} {check.id}", "", f"> {check.claim}", ""]
        lines += [f"- **Looked at**: {check.looked_at}", f"- **Verdict**: {check.verdict}"]
        if check.reason:
            lines.append(f"- **Reason**: {check.reason}")
        for label, text in (("Command", check.command), ("Evidence", check.evidence)):
            fence = _fence(text)
            lines += ["", f"{label}:", "", fence, text, fence]
    return "\n".join(lines) + "\n"


def html_page(report: Report) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in _header(report))
    sections = []
    for check in report.checks:
        reason = f"<li><b>Reason</b>: {e(check.reason)}</li>" if check.reason else ""
        sections.append(
            f'<section class="{e(check.verdict.replace(" ", "-"))}">'
            f"<h2>{e(MARK[check.verdict])} {e(check.id)}</h2>"
            f"<blockquote>{e(check.claim)}</blockquote>"
            f"<ul><li><b>Looked at</b>: {e(check.looked_at)}</li><li><b>Verdict</b>: {e(check.verdict)}</li>"
            f"{reason}</ul>"
            f"<p>Command:</p><pre>{e(check.command)}</pre><p>Evidence:</p><pre>{e(check.evidence)}</pre>"
            "</section>"
        )
    title = e(f"No-logs audit of {report.server.get('name', '')}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}pre{background:#f4f4f4;padding:.5em;"
        "white-space:pre-wrap}.fail h2{color:#a00}.pass h2{color:#060}th{text-align:left;padding-right:1em}"
        "</style></head><body>"
        f"<h1>{title}</h1><table>{rows}</table>{''.join(sections)}</body></html>\n"
    )
