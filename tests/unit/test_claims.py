"""docs/claims.md, the auditors' map from each sentence of the promise to tasks, audit checks and lab tests,
stays true: everything it names exists, every audit check is in it under the sentence the check reports."""

from __future__ import annotations

import importlib.util
import re

from tests.conftest import REPO

ROLES = REPO / "collections/ansible_collections/norex/vpn/roles"
MODULE = REPO / "collections/ansible_collections/norex/vpn/plugins/modules/audit.py"


def shared_claims():
    from norex.collection import audit_claims

    return audit_claims


def audit_module():
    spec = importlib.util.spec_from_file_location("norex_audit_module", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def words(text: str) -> str:
    return " ".join(text.split())


def sections() -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (REPO / "docs/claims.md").read_text().splitlines():
        heading = re.fullmatch(r'## "(.+)"', line)
        if heading:
            current = found.setdefault(heading.group(1), {})
        elif current is not None and (item := re.fullmatch(r"- (Made true by|Checked by|Proven by): (.+)", line)):
            current[item.group(1)] = re.findall(r"`([^`]+)`", item.group(2))
    return found


def test_every_sentence_is_the_promise_s_own_words_and_the_audit_s():
    promise = words((REPO / "docs/promise.txt").read_text())
    claims = set(shared_claims().CLAIMS.values())
    mapped = sections()
    assert len(mapped) >= 10
    for sentence in mapped:
        assert words(sentence) in promise, sentence
    assert set(mapped) == claims


def test_every_check_is_mapped_under_the_sentence_it_reports():
    module = shared_claims()
    mapped = sections()
    listed = {check: sentence for sentence, parts in mapped.items() for check in parts.get("Checked by", [])}
    assert set(listed) == set(module.CHECK_CLAIMS), set(listed) ^ set(module.CHECK_CLAIMS)
    for check, key in module.CHECK_CLAIMS.items():
        assert listed[check] == module.CLAIMS[key], check


def test_every_task_file_and_test_named_exists():
    for sentence, parts in sections().items():
        assert parts.get("Made true by") and parts.get("Proven by"), sentence
        for task in parts["Made true by"]:
            assert (ROLES / task).is_file(), task
        for test in parts["Proven by"]:
            path, _, name = test.partition("::")
            assert (REPO / path).is_file(), test
            assert re.search(rf"^def {re.escape(name)}\(", (REPO / path).read_text(), re.MULTILINE), test


def test_every_place_a_seizure_may_find_data_is_documented():
    module = shared_claims()
    text = (REPO / "docs/claims.md").read_text()
    table = text[text.index("## What a seizure finds") :]
    for place, (_, check) in {**module.LIVE_STATE, **module.CONFIGURATION}.items():
        row = next((line for line in table.splitlines() if line.startswith(f"| `{place}`")), None)
        assert row is not None, place
        assert (f"`{check}`" in row) if check else row.rstrip().endswith("| none |"), row
        assert check is None or check in module.CHECK_CLAIMS, check
