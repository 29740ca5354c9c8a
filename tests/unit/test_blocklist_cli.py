"""`norex blocklist build` as an operator runs it: outputs, --json, one-line errors, HTTP sources on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from norex.blocklist.build import build
from norex.blocklist.fetch import display
from norex.cli import main
from norex.errors import UsageError
from tests.unit.http_support import serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blocklists"
NOREX = str(Path(sys.executable).with_name("norex"))


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point, in-process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["norex", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def fixture_sources() -> list[str]:
    return [
        f"ads={FIXTURES / 'hosts.txt'}",
        f"trackers={FIXTURES / 'adblock.txt'}",
        f"malware={FIXTURES / 'rpz.txt'}",
        f"ads={FIXTURES / 'domains.txt'}",
    ]


def zones(conf: Path) -> dict[str, str]:
    found = {}
    for line in conf.read_text().splitlines():
        if line.startswith("local-zone:"):
            _, name, kind = line.split()
            found[name.strip('"')] = kind
    return found


def test_build_from_fixtures_with_json(monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run(
        monkeypatch, capsys, "blocklist", "build", *fixture_sources(), "--allow", str(FIXTURES / "allow.txt"),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    result = json.loads(stdout)
    assert result == json.loads((out / "manifest.json").read_text())
    assert zones(out / "blocklist.conf") == {
        "ads.example.com.": "always_nxdomain",
        "tracker.example.net.": "always_nxdomain",
        "v6sink.example.org.": "always_nxdomain",
        "loop6.example.org.": "always_nxdomain",
        "leading.example.org.": "always_nxdomain",
        "trailing.example.org.": "always_nxdomain",
        "under_score.example.com.": "always_nxdomain",
        "adblock.example.com.": "always_nxdomain",
        "starred.example.com.": "always_nxdomain",
        "rpz.example.com.": "always_nxdomain",
        "ttl.example.com.": "always_nxdomain",
        "xn--bcher-kva.example.": "always_nxdomain",
        "ok.ads.example.com.": "transparent",
    }
    assert result["total"] == 12
    assert result["categories"] == {"ads": 8, "trackers": 2, "malware": 2}
    assert result["exceptions"] == 1
    assert result["dropped"] == {"duplicate": 2, "allowlisted": 2, "covered-by-parent": 1}
    assert result["rejected"] == {
        "empty-label": 1,
        "invalid-idn": 1,
        "invalid-label": 1,
        "invalid-tld": 1,
        "ip-address": 3,
        "localhost": 9,
        "non-sink-address": 1,
        "single-label": 1,
        "unsupported-adblock": 9,
        "unsupported-rpz": 6,
    }
    assert result["rejected_total"] == 33
    assert result["candidates"] == (result["total"] + result["rejected_total"] + sum(result["dropped"].values()))
    assert [s["category"] for s in result["sources"]] == ["ads", "trackers", "malware", "ads"]
    hosts = result["sources"][0]
    assert hosts["sha256"] == hashlib.sha256((FIXTURES / "hosts.txt").read_bytes()).hexdigest()
    assert hosts["lines"] == 19
    assert result["allowlist"]["names"] == 2 and result["allowlist"]["subtrees"] == 1
    assert result["zone_type"] == "always_nxdomain"
    conf = (out / "blocklist.conf").read_bytes()
    assert result["output"] == {
        "file": "blocklist.conf",
        "sha256": hashlib.sha256(conf).hexdigest(),
        "bytes": len(conf),
    }


def test_human_summary_names_no_domain(monkeypatch, capsys, tmp_path):
    code, stdout, stderr = run(monkeypatch, capsys, "blocklist", "build", *fixture_sources(), "--out", str(tmp_path))
    assert code == 0
    assert "blocked 14 names (ads 10, trackers 2, malware 2)" in stdout
    assert "example" not in stdout + stderr
    assert len(stdout.splitlines()) == 3


def test_same_input_gives_the_same_bytes(monkeypatch, capsys, tmp_path):
    for name in ("one", "two"):
        assert run(monkeypatch, capsys, "blocklist", "build", *fixture_sources(), "--out", str(tmp_path / name))[0] == 0
    for file in ("blocklist.conf", "manifest.json"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_rebuild_replaces_outputs_and_leaves_no_temp_files(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("a.example.com\n")
    out = tmp_path / "out"
    build([f"ads={src}"], out)
    src.write_text("b.example.com\n")
    build([f"ads={src}"], out, zone_type="always_refuse")
    assert zones(out / "blocklist.conf") == {"b.example.com.": "always_refuse"}
    assert sorted(p.name for p in out.iterdir()) == ["blocklist.conf", "manifest.json"]


def test_zone_type_option(monkeypatch, capsys, tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("a.example.com\n")
    code, stdout, _ = run(
        monkeypatch, capsys, "blocklist", "build", f"malware={src}", "--out", str(tmp_path / "o"),
        "--zone-type", "always_null", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["zone_type"] == "always_null"
    assert zones(tmp_path / "o" / "blocklist.conf") == {"a.example.com.": "always_null"}


def test_source_with_no_usable_names_warns_without_naming_anything(monkeypatch, capsys, tmp_path):
    src = tmp_path / "page.html"
    src.write_text("<html><body>Not Found: evil.example.com</body></html>\n")
    code, _, stderr = run(monkeypatch, capsys, "blocklist", "build", f"ads={src}", "--out", str(tmp_path / "o"))
    assert code == 0
    assert "warning: ads source" in stderr and "has no usable names" in stderr
    assert "evil" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothing-to-split"], "is not CATEGORY=PATH_OR_URL"),
        (["porn=list.txt"], "unknown category 'porn'"),
        (["ads="], "no path or URL"),
        (["ads=does-not-exist.txt"], "does-not-exist.txt: cannot read (No such file or directory)"),
        (["ads=."], "is a directory"),
        (["ads=ftp://127.0.0.1/list.txt"], "unsupported URL scheme 'ftp'"),
        (["ads=file://remote.example/list.txt"], "must name a local path"),
        (["ads=http://127.0.0.1:9/list.txt"], "cannot fetch"),
    ],
)
def test_bad_sources_are_one_line_errors_and_write_nothing(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.txt"
    good.write_text("a.example.com\n")
    out = tmp_path / "out"
    code, stdout, stderr = run(monkeypatch, capsys, "blocklist", "build", f"ads={good}", *args, "--out", str(out))
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("norex: error: ") and message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["blocklist", "build", "--out", "o"], "give --defaults or at least one source"),
        (["blocklist", "build", "ads=x.txt"], "Missing option '--out'"),
        (["blocklist", "build", "ads=x.txt", "--out", "o", "--zone-type", "deny"], "'deny' is not one of"),
    ],
)
def test_click_usage_errors_are_one_line(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_is_refused(monkeypatch, capsys, tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("a.example.com\n")
    (tmp_path / "file").write_text("keep me")
    code, _, stderr = run(monkeypatch, capsys, "blocklist", "build", f"ads={src}", "--out", str(tmp_path / "file"))
    assert code == 2 and stderr.count("\n") == 1
    assert (tmp_path / "file").read_text() == "keep me"


def test_size_cap_for_files(tmp_path):
    src = tmp_path / "big.txt"
    src.write_text("a.example.com\n" * 10)
    with pytest.raises(UsageError, match="larger than the 20-byte limit"):
        build([f"ads={src}"], tmp_path / "out", max_bytes=20)
    assert not (tmp_path / "out").exists()


def test_file_url(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("a.example.com\n")
    result = build([f"ads={src.as_uri()}"], tmp_path / "out")
    assert result["total"] == 1
    assert result["sources"][0]["location"] == src.as_uri()


# --- HTTP sources, served from 127.0.0.1 on an ephemeral port ---------------------------------------------------

ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/hosts.txt": (200, {}, b"0.0.0.0 http-ads.example.com\r\n0.0.0.0 localhost\r\n"),
    "/missing.txt": (404, {}, b"not here"),
    "/error.txt": (500, {}, b"boom"),
    "/big-declared.txt": (200, {"Content-Length": "1000000"}, b""),
    "/big-undeclared.txt": (200, {}, b"a.example.com\n" * 100),
    "/to-ftp.txt": (302, {"Location": "ftp://127.0.0.1/list.txt"}, b""),
    "/to-hosts.txt": (302, {"Location": "/hosts.txt"}, b""),
}


SEEN_AUTH: list[str | None] = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        SEEN_AUTH.append(self.headers.get("Authorization"))
        if path == "/slow.txt":
            time.sleep(1.5)
        status, headers, body = ROUTES.get(path, (200, {}, b"slow.example.com\n"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers and path != "/big-undeclared.txt":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path != "/big-declared.txt":
            # The client may give up first (size cap, timeout): that is what those tests want.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the privacy rule holds in tests too."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Handler) as base:
        yield base


def test_http_source(server, tmp_path):
    result = build([f"malware={server}/hosts.txt"], tmp_path / "out")
    assert zones(tmp_path / "out" / "blocklist.conf") == {"http-ads.example.com.": "always_nxdomain"}
    assert result["sources"][0]["sha256"] == hashlib.sha256(ROUTES["/hosts.txt"][2]).hexdigest()
    assert result["rejected"] == {"localhost": 1}


def test_http_location_in_the_manifest_drops_credentials_and_query(server, tmp_path):
    url = server.replace("http://", "http://user:secret@") + "/hosts.txt?auth-key=secret"
    result = build([f"malware={url}"], tmp_path / "out")
    assert result["sources"][0]["location"] == f"{server}/hosts.txt"
    assert "secret" not in (tmp_path / "out" / "manifest.json").read_text()
    assert SEEN_AUTH[-1] == "Basic " + base64.b64encode(b"user:secret").decode()


def test_display_keeps_ipv6_brackets():
    assert display("http://u:p@[::1]:8080/list.txt?k=v") == "http://[::1]:8080/list.txt"
    assert display("lists/ads.txt") == "lists/ads.txt"


def test_http_redirect_is_followed(server, tmp_path):
    assert build([f"ads={server}/to-hosts.txt"], tmp_path / "out")["total"] == 1


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("/missing.txt", {}, "HTTP 404"),
        ("/error.txt", {}, "HTTP 500"),
        ("/big-declared.txt", {"max_bytes": 1000}, "larger than the 1000-byte limit"),
        ("/big-undeclared.txt", {"max_bytes": 1000}, "larger than the 1000-byte limit"),
        ("/to-ftp.txt", {}, "redirected to a non-HTTP URL"),
        ("/slow.txt", {"timeout": 0.3}, "within 0.3 s"),
    ],
)
def test_http_failures_write_nothing(server, tmp_path, path, kwargs, message):
    good = tmp_path / "good.txt"
    good.write_text("a.example.com\n")
    with pytest.raises(UsageError, match=message) as err:
        build([f"ads={good}", f"ads={server}{path}"], tmp_path / "out", **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_http_error_through_the_cli(server, monkeypatch, capsys, tmp_path):
    code, _, stderr = run(monkeypatch, capsys, "blocklist", "build", f"ads={server}/missing.txt", "--out", "x")
    assert code == 2
    assert stderr == f"norex: error: {server}/missing.txt: HTTP 404 Not Found\n"


# --- the installed command and, where present, Unbound's own checker --------------------------------------------


def test_installed_command(tmp_path):
    proc = subprocess.run(
        [NOREX, "blocklist", "build", f"ads={FIXTURES / 'hosts.txt'}", "--out", str(tmp_path / "o"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"] == 8
    bad = subprocess.run(
        [NOREX, "blocklist", "build", "ads"], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
