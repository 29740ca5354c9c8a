"""The "Blocklist sources and licences" page, generated from a build's manifest: every list a customer's resolver
blocks names from, with its title, author, link and licence, and that we modified it. Markdown; the same facts
as the include file's header, for people rather than for Unbound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from norex.blocklist.sources import LICENCE_URLS, MIT_NOTICE, MODIFIED


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def sources_page(manifest: Mapping[str, Any]) -> str:
    sources = manifest.get("sources") or []
    known = [s for s in sources if s.get("key")]
    own = [s for s in sources if not s.get("key")]
    lines = [
        "# Blocklist sources and licences",
        "",
        "The resolver on your server refuses lookups of the names in these lists. We modified every list: "
        f"{MODIFIED}. Nothing here says which names you looked up: no such record exists.",
        "",
        "| List | Category | Author | Link | Licence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in known:
        licence = s.get("licence", "")
        link = LICENCE_URLS.get(licence)
        shown = f"[{licence}]({link})" if link else licence
        if s.get("accepted"):
            shown += " (accepted by us)"
        lines.append(
            f"| {_cell(s.get('title'))} | {_cell(s.get('category'))} | {_cell(s.get('copyright'))} "
            f"| <{s.get('homepage')}> | {_cell(shown)} |"
        )
    if own:
        count = len(own)
        lines.append(f"| {count} list{'s' if count != 1 else ''} of our own | " + ", ".join(
            sorted({_cell(s.get('category')) for s in own})) + " | NorexVPN | - | - |")  # fmt: skip
    doubts = [s for s in known if s.get("doubt")]
    if doubts:
        lines += ["", "## Open questions about terms", ""]
        lines += [f"- {s['title']}: {s['doubt']}." for s in doubts]
    missing = manifest.get("categories_without_source") or []
    if missing:
        lines += ["", f"No list in this build covers: {', '.join(missing)}."]
    if any(s.get("licence") == "MIT" for s in known):
        lines += ["", "## MIT licence", "", "For the lists above under MIT, with their copyright notices:", "",
                  MIT_NOTICE]  # fmt: skip
    return "\n".join(lines) + "\n"
