"""The control plane's own blocklist (norex.blocklist.fleet): with NOREX_BLOCKLIST_FILE unset, the first converge
builds the default sources (all three categories) into NOREX_BLOCKLIST_DIR, once; `norex blocklist update`
refreshes it through the cache; a source that fails keeps its copy; NOREX_BLOCKLIST_WITHOUT turns a default off.
The sources are the synthetic copies the lab web site serves, here from a loopback server."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from norex.blocklist import fleet
from norex.blocklist.sources import DEFAULTS
from norex.converge.variables import site_variables
from norex.converge.version import converge_version
from norex.errors import NorexError, UsageError
from norex.provision.interface import ServerHandle
from norex.settings import load_settings
from tests.unit.http_support import LISTS, serving
from tests.unit.test_blocklist_cli import run, zones

# One name of each category in the synthetic copies (norex/lab/data/lists).
BLOCKED = {"ads": "banner.adaway-ads.test.", "trackers": "telemetry.spy-trackers.test.",
           "malware": "drop.urlhaus-malware.test."}  # fmt: skip


USE_THAT = "the fleet uses that build; rebuild it with norex blocklist build"


class Lists(http.server.SimpleHTTPRequestHandler):
    """The default lists, counting requests; `failing` keys answer 500."""

    asked: ClassVar[list[str]] = []
    failing: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        Lists.asked.append(self.path)
        if self.path.strip("/") in Lists.failing:
            self.send_error(500)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    Lists.asked, Lists.failing = [], set()
    for name in ("NOREX_BLOCKLIST_FILE", "NOREX_BLOCKLIST_WITHOUT", "NOREX_BLOCKLIST_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOREX_BLOCKLIST_DIR", str(tmp_path / "fleet"))
    monkeypatch.setenv("NOREX_AGENT_CA_DIR", str(tmp_path / "agent-ca"))
    with serving(functools.partial(Lists, directory=str(LISTS))) as base:  # type: ignore[arg-type]
        yield base


def test_the_first_converge_builds_the_defaults_once_and_every_category_is_blocked(mirror, tmp_path):
    settings = load_settings()
    conf = fleet.ensure(settings, lambda: mirror)
    assert conf == tmp_path / "fleet" / "blocklist.conf" == settings.fleet_blocklist_file
    blocked = zones(conf)
    assert all(blocked.get(name) == "always_refuse" for name in BLOCKED.values()), BLOCKED
    manifest = json.loads((tmp_path / "fleet" / "manifest.json").read_text())
    assert {s["key"] for s in manifest["sources"]} == {s.key for s in DEFAULTS}
    assert manifest["categories_without_source"] == [] and all(manifest["categories"].values())
    assert len(Lists.asked) == len(DEFAULTS)
    # A list exists: later converges use it as it is (a refresh is `norex blocklist update`, then a roll-out).
    assert fleet.ensure(settings, lambda: pytest.fail("no build, so no mirror asked")) == conf
    assert len(Lists.asked) == len(DEFAULTS)
    handle = ServerHandle("c-00000000deadbeef", "hcloud", "n", "203.0.113.9", "2001:db8::9")
    assert site_variables(handle, settings, [])["resolver_blocklist_file"] == str(conf)


def test_workers_converging_at_once_build_it_once(mirror):
    settings = load_settings()
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(fleet.ensure(settings, lambda: mirror))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1] and results[0].is_file()
    assert len(Lists.asked) == len(DEFAULTS)


def test_update_asks_again_and_a_changed_list_is_a_new_version(mirror, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NOREX_BLOCKLIST_MIRROR", mirror)
    monkeypatch.setenv("NOREX_BACKEND", "hcloud")  # the mirror from the setting, not from the lab
    code, out, err = run(monkeypatch, capsys, "blocklist", "update")
    assert (code, err) == (0, "")
    assert out.startswith("blocked ") and str(tmp_path / "fleet" / "blocklist.conf") in out
    first = converge_version(load_settings())
    # Unchanged sources: asked again (conditionally), same list, same version.
    code, out, err = run(monkeypatch, capsys, "blocklist", "update", "--json")
    assert (code, err) == (0, "") and json.loads(out)["total"] > 0
    assert len(Lists.asked) == 2 * len(DEFAULTS)
    assert converge_version(load_settings()) == first
    # Turning URLhaus off (the abuse.ch terms in doubt) is one switch: a new list, so a new version to roll out.
    monkeypatch.setenv("NOREX_BLOCKLIST_WITHOUT", "urlhaus")
    code, out, err = run(monkeypatch, capsys, "blocklist", "update")
    assert code == 0 and err == "norex: warning: no source of this build gives malware names\n"
    assert BLOCKED["malware"] not in zones(tmp_path / "fleet" / "blocklist.conf")
    assert converge_version(load_settings()) != first


def test_a_failing_source_keeps_its_copy_and_says_so(mirror, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NOREX_BLOCKLIST_MIRROR", mirror)
    fleet.ensure(load_settings())
    Lists.failing = {"adaway"}
    code, _, err = run(monkeypatch, capsys, "blocklist", "update")
    assert code == 0
    assert err.startswith(f"norex: warning: {mirror}/adaway: HTTP 500") and "kept its copy of 20" in err
    assert err.count("\n") == 1
    assert BLOCKED["ads"] in zones(tmp_path / "fleet" / "blocklist.conf")


def test_without_any_good_copy_nothing_is_written_and_the_job_is_retried(mirror, tmp_path):
    Lists.failing = {"urlhaus"}
    with pytest.raises(NorexError, match=r"^the fleet's blocklist \(the default sources\) could not be built: ") as e:
        fleet.ensure(load_settings(), lambda: mirror)
    assert e.value.transient and not isinstance(e.value, UsageError)
    assert not (tmp_path / "fleet" / "blocklist.conf").exists()


def test_an_operators_own_build_is_used_as_it_is(mirror, monkeypatch, capsys, tmp_path):
    own = tmp_path / "own" / "blocklist.conf"
    own.parent.mkdir()
    own.write_text("server:\n")
    monkeypatch.setenv("NOREX_BLOCKLIST_FILE", str(own))
    assert fleet.ensure(load_settings(), lambda: pytest.fail("never built")) == own
    assert fleet.manifest_path(load_settings()) == own.parent / "manifest.json"
    code, out, err = run(monkeypatch, capsys, "blocklist", "update")
    assert (code, out) == (2, "")
    assert err == f"norex: error: NOREX_BLOCKLIST_FILE is set: {USE_THAT}\n"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NOREX_BLOCKLIST_WITHOUT", "urlhaus,no-such-list", "NOREX_BLOCKLIST_WITHOUT: names a source that is not a"),
        ("NOREX_BLOCKLIST_MIRROR", "ftp://mirror.example/lists", "NOREX_BLOCKLIST_MIRROR: must be an http:// or"),
    ],
)
def test_bad_settings_are_one_line_errors(mirror, monkeypatch, capsys, name, value, message):
    monkeypatch.setenv(name, value)
    code, out, err = run(monkeypatch, capsys, "blocklist", "update")
    assert (code, out) == (2, "") and err.startswith(f"norex: error: {message}") and err.count("\n") == 1
    assert not Lists.asked
