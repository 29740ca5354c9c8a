#!/usr/bin/python
"""Check, read-only, that a server keeps the no-logs promise; return one entry of evidence per check."""

from __future__ import annotations

DOCUMENTATION = r"""
module: audit
short_description: Check, read-only, that a server keeps the NorexVPN no-logs promise
version_added: 0.1.0
description:
  - "Runs every check of the no-logs audit on the server in one module run and changes nothing: it reads
    files, C(/proc) and C(/sys), and runs only commands that report, such as C(systemd-analyze cat-config),
    C(nft -j list ruleset), C(unbound-control get_option) and C(wg show)."
  - Each check names the sentence of the promise it backs, what it looked at, the command and its trimmed
    output as evidence, and a verdict (pass, fail, or not applicable with the reason).
  - Never returns key material. A private key is read only to search for copies of it, and its value is
    not part of any evidence.
options:
  wireguard_interface:
    description: The tunnel interface.
    type: str
    default: wg0
  expected_peers:
    description: Public keys of the peers the control plane expects; omitted skips that comparison.
    type: list
    elements: str
  journald_runtime_max_use:
    description: The cap on the volatile journal's size, as journald.conf writes it (e.g. C(16M)).
    type: str
    default: 16M
  resolver_cache_max_ttl:
    description: The longest a name may stay in the resolver's cache, in seconds.
    type: int
    default: 3600
  conntrack_established_max:
    description: The longest an established TCP flow may stay in the connection table, in seconds.
    type: int
    default: 1800
  agent_port:
    description: The agent's TCP port (0 when the server has no agent).
    type: int
    default: 8443
  agent_cidrs:
    description: The control plane's networks, the only sources the agent port may be open to.
    type: list
    elements: str
    default: []
  agent_online_seconds_max:
    description: The longest the agent may keep a quiet peer's endpoint, in seconds (window plus purge interval).
    type: int
    default: 210
author:
  - NorexVPN
"""

EXAMPLES = r"""
- name: Audit the server
  norex.vpn.audit:
    wireguard_interface: wg0
    agent_cidrs: [198.51.100.7/32]
  register: audit
"""

RETURN = r"""
checks:
  description: One entry per check (id, claim, looked_at, command, evidence, verdict, reason).
  type: list
  elements: dict
  returned: always
identity:
  description: The server's machine id and the SHA-256 fingerprints of its SSH host keys.
  type: dict
  returned: always
"""

import base64
import glob
import hashlib
import ipaddress
import json
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.norex.vpn.plugins.module_utils.audit_claims import CHECK_CLAIMS, CLAIMS

SYSLOG_DAEMONS = ("rsyslogd", "syslog-ng", "syslogd", "auditd", "accton", "atopacctd", "atop", "sadc", "snoopy")
LOGGING_PACKAGES = (
    "rsyslog", "syslog-ng", "syslog-ng-core", "inetutils-syslogd", "busybox-syslogd", "auditd", "acct", "atop",
    "sysstat", "snoopy", "socklog", "ulogd2", "systemd-journal-remote",
)  # fmt: skip
CAPTURE_PACKAGES = (
    "tcpdump", "tshark", "wireshark", "wireshark-common", "termshark", "ngrep", "netsniff-ng", "tcpflow",
    "tcpflow-nox", "tcpick", "tcpreplay", "tcpxtract", "dsniff", "ettercap-common", "ettercap-text-only",
    "justniffer", "darkstat", "iftop", "nfdump", "ntopng", "p0f", "pmacct", "sniffit", "snort", "softflowd",
    "suricata", "zeek", "argus-server", "argus-client", "arpwatch", "fprobe",
)  # fmt: skip
CAPTURE_TOOLS = (
    "tcpdump", "tshark", "dumpcap", "wireshark", "termshark", "ngrep", "netsniff-ng", "tcpflow", "tcpick",
    "tcpreplay", "tcpxtract", "dsniff", "ettercap", "justniffer", "darkstat", "iftop", "nfcapd", "ntopng",
    "p0f", "pmacctd", "sniffit", "snort", "softflowd", "suricata", "zeek", "argus", "arpwatch", "fprobe",
    "bettercap", "ulogd", "conntrackd",
)  # fmt: skip
CAPTURE_PIN = "/etc/apt/preferences.d/norex-no-capture"
RESOLVER_SAFE = {
    "verbosity": "0",
    "log-queries": "no",
    "log-replies": "no",
    "log-tag-queryreply": "no",
    "log-local-actions": "no",
    "log-servfail": "no",
    "val-log-level": "0",
    "logfile": "",
    "use-syslog": "no",
    "qname-minimisation": "yes",
}
LOG_NAME = re.compile(r"(\.log(\.\d+)?|\.journal~?|/log/[^/]+|_log|\.pcap(ng)?)$")
NFT_RECORDING = ("log", "queue", "dup", "fwd")
IPTABLES_RECORDING = re.compile(r"-j (LOG|NFLOG|ULOG|NFQUEUE|QUEUE|TRACE|TEE)\b")
EVIDENCE_LINES, EVIDENCE_CHARS = 40, 4000


def trim(text):
    lines = (text or "").strip().splitlines()
    out = "\n".join(lines[:EVIDENCE_LINES])
    if len(lines) > EVIDENCE_LINES:
        out += f"\n... ({len(lines) - EVIDENCE_LINES} more lines)"
    return out[:EVIDENCE_CHARS]


class Auditor:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.checks = []
        self._open_files = None
        self.in_container = self._in_container()

    # -- helpers -------------------------------------------------------------------------------------------

    def run(self, argv, data=None):
        """A reporting command; (rc, stdout, stderr). A missing tool is rc 127."""
        if not self.module.get_bin_path(argv[0]) and not os.path.isabs(argv[0]):
            return 127, "", f"{argv[0]}: not installed"
        return self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C", "SYSTEMD_PAGER": ""})

    def add(self, check_id, looked_at, command, evidence, ok, reason="", not_applicable=""):
        if not_applicable:
            verdict, reason = "not applicable", not_applicable
        else:
            verdict = "pass" if ok else "fail"
            reason = "" if ok else reason
        self.checks.append({
            "id": check_id, "claim": CLAIMS[CHECK_CLAIMS[check_id]], "looked_at": looked_at, "command": command,
            "evidence": trim(evidence), "verdict": verdict, "reason": reason,
        })  # fmt: skip

    @staticmethod
    def read(path, default=""):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return default

    @staticmethod
    def _in_container():
        if os.path.exists("/run/systemd/container"):
            return True
        environ = Auditor.read("/proc/1/environ")
        return "container=" in environ

    def fstype(self, path):
        rc, out, _ = self.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path])
        return out.strip() if rc == 0 else ""

    def processes(self):
        """pid -> (comm, cmdline) of every process."""
        found = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                comm = self.read(f"/proc/{entry}/comm").strip()
                cmdline = self.read(f"/proc/{entry}/cmdline").replace("\0", " ").strip()
                if comm:
                    found[int(entry)] = (comm, cmdline)
        return found

    def open_files(self):
        """(pid, comm, target) of every open file descriptor of every process, read once per audit."""
        if self._open_files is None:
            self._open_files = []
            for pid, (comm, _) in self.processes().items():
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                except OSError:
                    continue
                for fd in fds:
                    try:
                        self._open_files.append((pid, comm, os.readlink(f"/proc/{pid}/fd/{fd}")))
                    except OSError:
                        continue
        return self._open_files

    def socket_owners(self):
        """socket inode -> "comm[pid]" for every process's open sockets."""
        owners = {}
        for pid, comm, target in self.open_files():
            if target.startswith("socket:["):
                owners.setdefault(target[8:-1], f"{comm}[{pid}]")
        return owners

    def package_status(self, names):
        """The given packages that are installed (dpkg's view)."""
        _rc, out, _ = self.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *names])
        return sorted(line.split()[0] for line in out.splitlines() if line.endswith(" installed"))

    # -- journald ------------------------------------------------------------------------------------------

    def journald(self):
        command = "systemd-analyze cat-config systemd/journald.conf"
        rc, out, err = self.run(["systemd-analyze", "cat-config", "systemd/journald.conf"])
        settings = {}
        for line in out.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                key, value = line.split("=", 1)
                settings[key.strip()] = value.strip()
        effective = {
            "Storage": settings.get("Storage", "auto"),
            "ForwardToSyslog": settings.get("ForwardToSyslog", "no"),
            "ForwardToKMsg": settings.get("ForwardToKMsg", "no"),
            "ForwardToConsole": settings.get("ForwardToConsole", "no"),
            "ForwardToWall": settings.get("ForwardToWall", "yes"),
            "RuntimeMaxUse": settings.get("RuntimeMaxUse", ""),
        }
        shown = "\n".join(f"{k}={v}" for k, v in effective.items())
        volatile = effective["Storage"] in ("volatile", "none")
        forwards = [k for k in ("ForwardToSyslog", "ForwardToKMsg", "ForwardToConsole", "ForwardToWall")
                    if effective[k] not in ("no", "false", "0", "off")]  # fmt: skip
        self.add(
            "journald.settings", "the settings journald reads (its config and every drop-in)",
            command, shown if rc == 0 else err, rc == 0 and volatile and not forwards,
            f"Storage={effective['Storage']}" if not volatile else f"forwarding on: {', '.join(forwards)}",
        )  # fmt: skip
        persistent = sorted(glob.glob("/var/log/journal/**/*.journal*", recursive=True))
        where = self.fstype("/var/log/journal") if os.path.exists("/var/log/journal") else "absent"
        running = os.path.isdir("/run/systemd/journal")
        on_disk = bool(persistent) and where != "tmpfs"
        evidence = f"/var/log/journal: {where}\njournal files there: {len(persistent)}\n/run/systemd/journal: " + (
            "present (journald running)" if running else "absent"
        )
        self.add(
            "journald.no_persistent_journal", "/var/log/journal and the running journald",
            "find /var/log/journal -name '*.journal*'; findmnt --target /var/log/journal", evidence,
            running and not on_disk, "journal files on persistent storage" if on_disk else "journald not running",
        )  # fmt: skip
        cap = parse_size(self.p["journald_runtime_max_use"])
        used = sum(os.path.getsize(f) for f in glob.glob("/run/log/journal/**/*.journal*", recursive=True))
        configured = parse_size(effective["RuntimeMaxUse"]) if effective["RuntimeMaxUse"] else None
        ok = configured is not None and configured <= cap and used <= cap
        self.add(
            "journald.runtime_cap", "the volatile journal in /run/log/journal and its cap",
            "du -b /run/log/journal; RuntimeMaxUse", f"RuntimeMaxUse={effective['RuntimeMaxUse'] or '(default)'}\n"
            f"bound: {self.p['journald_runtime_max_use']}\nin use: {used} bytes", ok,
            "the volatile journal's cap is not in force",
        )  # fmt: skip

    # -- daemons, storage, records -------------------------------------------------------------------------

    def daemons(self):
        installed = self.package_status(LOGGING_PACKAGES)
        running = sorted({f"{comm}[{pid}]" for pid, (comm, _) in self.processes().items() if comm in SYSLOG_DAEMONS})
        units = ("rsyslog.service", "syslog-ng.service", "auditd.service", "acct.service", "sysstat.service",
                 "atop.service", "systemd-journal-upload.service", "systemd-journal-remote.service")  # fmt: skip
        _rc, out, _ = self.run(["systemctl", "show", "-p", "Id,ActiveState,UnitFileState", *units])
        active = [b.split("Id=")[1].split()[0] for b in out.split("\n\n")
                  if "Id=" in b and ("ActiveState=active" in b or "UnitFileState=enabled" in b)]  # fmt: skip
        evidence = (
            f"installed: {installed or 'none'}\nrunning: {running or 'none'}\nactive or enabled: {active or 'none'}"
        )
        self.add(
            "daemons.no_syslog_audit_accounting", "packages, processes and units",
            "dpkg-query -W ...; ls /proc/*/comm; systemctl show " + " ".join(units), evidence,
            not installed and not running and not active, "a logging, audit or accounting daemon is present",
        )  # fmt: skip

    def storage(self):
        lines, bad = [], []
        for path in ("/var/log", "/tmp", "/var/tmp"):
            kind = self.fstype(path)
            lines.append(f"{path}: {kind or 'unknown'}")
            if kind != "tmpfs":
                bad.append(path)
        self.add(
            "storage.volatile_folders", "the file systems of /var/log, /tmp and /var/tmp",
            "findmnt -n -o FSTYPE --target PATH", "\n".join(lines), not bad, f"not in memory: {', '.join(bad)}",
        )  # fmt: skip

    def login_records(self):
        lines, bad = [], []
        for path in ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog", "/run/utmp"):
            if os.path.islink(path) and os.readlink(path) == "/dev/null":
                lines.append(f"{path} -> /dev/null")
            elif not os.path.lexists(path):
                lines.append(f"{path}: absent")
            else:
                size = os.path.getsize(path) if os.path.isfile(path) else 0
                lines.append(f"{path}: a file of {size} bytes")
                bad.append(path)
        self.add(
            "records.no_login_records", "wtmp, btmp, lastlog and utmp", "ls -l PATH",
            "\n".join(lines), not bad, f"kept: {', '.join(bad)}",
        )  # fmt: skip

    def core_dumps(self):
        pattern = self.read("/proc/sys/kernel/core_pattern").strip()
        _rc, out, _ = self.run(["systemd-analyze", "cat-config", "systemd/coredump.conf"])
        storage = [line.split("=", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Storage=")]
        kept = sorted(glob.glob("/var/lib/systemd/coredump/*"))
        limit = self.read("/proc/1/limits")
        core_limit = next((line for line in limit.splitlines() if line.startswith("Max core file size")), "")
        to_systemd = "systemd-coredump" in pattern
        ok = not kept and (not to_systemd or (storage and storage[-1] == "none"))
        self.add(
            "records.no_core_dumps", "core_pattern, coredump.conf, /var/lib/systemd/coredump",
            "cat /proc/sys/kernel/core_pattern; systemd-analyze cat-config systemd/coredump.conf",
            f"core_pattern: {pattern}\ncoredump Storage: {storage[-1] if storage else '(default: external)'}\n"
            f"stored dumps: {len(kept)}\n{core_limit.strip()}", ok, "core dumps can be stored",
        )  # fmt: skip

    def shell_history(self):
        homes = ["/root", *sorted(glob.glob("/home/*"))]
        found = []
        for home in homes:
            for name in (
                ".bash_history",
                ".zsh_history",
                ".history",
                ".python_history",
                ".lesshst",
                ".viminfo",
                ".mysql_history",
                ".psql_history",
                ".sqlite_history",
                ".node_repl_history",
                ".wget-hsts",
            ):
                path = os.path.join(home, name)
                if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) > 0:
                    found.append(path)
        self.add(
            "records.no_shell_history", "history files in /root and /home/*", "ls -l HOME/.*history",
            "\n".join(found) or "none", not found, "history kept",
        )  # fmt: skip

    def swap(self):
        lines = self.read("/proc/swaps").splitlines()[1:]
        plain = []
        for line in lines:
            device = line.split()[0]
            real = os.path.realpath(device)
            dm = os.path.basename(real)
            uuid = self.read(f"/sys/block/{dm}/dm/uuid").strip() if dm.startswith("dm-") else ""
            if not uuid.startswith("CRYPT-"):
                plain.append(device)
        self.add(
            "records.no_plain_swap", "/proc/swaps", "cat /proc/swaps",
            "\n".join(lines) or "no swap", not plain, f"unencrypted swap: {', '.join(plain)}",
        )  # fmt: skip

    # -- capture -------------------------------------------------------------------------------------------

    def capture(self):
        installed = self.package_status(CAPTURE_PACKAGES)
        on_path = []
        folders = [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        for folder in folders:
            for tool in CAPTURE_TOOLS:
                path = os.path.join(folder, tool)
                if os.path.isfile(path) and os.access(path, os.X_OK) and path not in on_path:
                    on_path.append(path)
        self.add(
            "capture.no_tools", "packages, and files on PATH named like capture tools",
            "dpkg-query -W ...; ls PATH", f"installed: {installed or 'none'}\non PATH: {on_path or 'none'}",
            not installed and not on_path, "a capture tool is present",
        )  # fmt: skip
        pin = self.read(CAPTURE_PIN)
        pinned = [name for name in ("tcpdump", "tshark", "wireshark-common") if re.search(rf"\b{name}\b", pin)]
        self.add(
            "capture.apt_pin", CAPTURE_PIN, f"cat {CAPTURE_PIN}", pin or "(absent)",
            "Pin-Priority: -1" in pin and len(pinned) == 3, "the pin that keeps capture tools out is missing",
        )  # fmt: skip
        owners = self.socket_owners()
        rows = self.read("/proc/net/packet").splitlines()[1:]
        holders = sorted({owners.get(row.split()[-1], f"inode {row.split()[-1]}") for row in rows if row.split()})
        self.add(
            "capture.no_packet_sockets", "AF_PACKET sockets (/proc/net/packet) and their processes",
            "cat /proc/net/packet", "\n".join(holders) or "none", not holders, "a process holds a packet socket",
        )  # fmt: skip

    def firewall_rules(self):
        rc, out, err = self.run(["nft", "-j", "list", "ruleset"])
        found = []
        if rc == 0:
            try:
                ruleset = json.loads(out).get("nftables", [])
            except ValueError:
                ruleset = []
            for item in ruleset:
                rule = item.get("rule")
                if rule and recording_expression(rule.get("expr", [])):
                    found.append(f"{rule.get('family')} {rule.get('table')} {rule.get('chain')}: "
                                 f"{recording_expression(rule.get('expr', []))}")  # fmt: skip
        ipt = []
        for tool in ("iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save"):
            trc, tout, _ = self.run([tool])
            if trc == 0:
                ipt += [f"{tool}: {line}" for line in tout.splitlines() if IPTABLES_RECORDING.search(line)]
        self.add(
            "capture.no_recording_rules", "nftables and iptables rules",
            "nft -j list ruleset; iptables-save; ip6tables-save",
            "\n".join(found + ipt) or ("no rule logs, queues, traces or duplicates packets" if rc == 0 else err),
            rc == 0 and not found and not ipt, "a rule records or copies packets",
        )  # fmt: skip
        listeners = []
        owners = self.socket_owners()
        for row in self.read("/proc/net/netlink").splitlines()[1:]:
            fields = row.split()
            # sk Eth Pid Groups ...  Inode: protocol 12 is NETLINK_NETFILTER; conntrack events are its groups 1-6.
            if len(fields) > 9 and fields[1] == "12" and int(fields[3], 16) & 0x3F:
                listeners.append(owners.get(fields[-1], f"inode {fields[-1]}"))
        self.add(
            "capture.no_conntrack_listener", "netfilter netlink sockets subscribed to conntrack events",
            "cat /proc/net/netlink", "\n".join(listeners) or "none", not listeners, "a process listens to conntrack",
        )  # fmt: skip
        self.bpf()

    def bpf(self):
        interfaces = [self.p["wireguard_interface"], self.uplink()]
        lines, attached = [], []
        for name in filter(None, interfaces):
            _rc, out, _ = self.run(["ip", "-d", "link", "show", "dev", name])
            xdp = "xdp" in out and "prog/xdp" in out
            tc = []
            for direction in ("ingress", "egress"):
                trc, tout, _ = self.run(["tc", "filter", "show", "dev", name, direction])
                if trc == 0 and "bpf" in tout:
                    tc.append(direction)
            lines.append(f"{name}: xdp {'attached' if xdp else 'none'}; tc bpf {', '.join(tc) or 'none'}")
            if xdp or tc:
                attached.append(name)
        self.add(
            "capture.no_bpf_on_interfaces", "eBPF programs on the tunnel and uplink interfaces",
            "ip -d link show dev IF; tc filter show dev IF ingress|egress", "\n".join(lines), not attached,
            f"a BPF program is attached to {', '.join(attached)}",
        )  # fmt: skip

    def uplink(self):
        for line in self.read("/proc/net/route").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return fields[0]
        return ""

    # -- resolver ------------------------------------------------------------------------------------------

    def resolver(self):
        values, lines = {}, []
        options = [*RESOLVER_SAFE, "module-config", "control-interface", "dnstap-enable", "cache-max-ttl",
                   "cache-max-negative-ttl", "control-use-cert"]  # fmt: skip
        for option in options:
            rc, out, _ = self.run(["unbound-control", "get_option", option])
            values[option] = out.strip() if rc == 0 else None
            lines.append(f"{option}: {values[option] if values[option] is not None else '(not available)'}")
        if all(v is None for v in values.values()):
            self.add(
                "resolver.records_nothing", "the running Unbound", "unbound-control get_option",
                "\n".join(lines), False, "the resolver does not answer on its control socket",
            )  # fmt: skip
            return
        unsafe = [o for o in ("verbosity", "log-queries", "log-replies", "log-tag-queryreply", "log-local-actions",
                              "log-servfail", "val-log-level", "logfile", "use-syslog")
                  if values[o] != RESOLVER_SAFE[o]]  # fmt: skip
        modules = values["module-config"] or ""
        if "python" in modules or "dynlib" in modules:
            unsafe.append(f"module-config {modules}")
        if values["dnstap-enable"] not in (None, "no"):
            unsafe.append("dnstap-enable")
        evidence = "\n".join(lines)
        self.add(
            "resolver.records_nothing", "the running Unbound's logging options",
            "unbound-control get_option OPTION", evidence, not unsafe, f"unsafe: {', '.join(unsafe)}",
        )  # fmt: skip
        control = values["control-interface"] or ""
        local = control.startswith("/")
        self.add(
            "resolver.control_local_only", "Unbound's remote control",
            "unbound-control get_option control-interface", f"control-interface: {control}", local,
            "remote control listens on a network address",
        )  # fmt: skip
        validating = "validator" in modules
        self.add(
            "resolver.minimal_and_validating", "QNAME minimisation and DNSSEC validation",
            "unbound-control get_option qname-minimisation; get_option module-config",
            f"qname-minimisation: {values['qname-minimisation']}\nmodule-config: {modules}",
            values["qname-minimisation"] == "yes" and validating, "QNAME minimisation or validation is off",
        )  # fmt: skip
        bound = self.p["resolver_cache_max_ttl"]
        ttls = [int(values[o]) for o in ("cache-max-ttl", "cache-max-negative-ttl") if (values[o] or "").isdigit()]
        self.add(
            "bounds.resolver_cache", "how long a looked-up name may stay in the resolver's cache",
            "unbound-control get_option cache-max-ttl; cache-max-negative-ttl",
            f"cache-max-ttl: {values['cache-max-ttl']}\ncache-max-negative-ttl: {values['cache-max-negative-ttl']}"
            f"\nbound: {bound} s", len(ttls) == 2 and max(ttls) <= bound, "the cache may keep a name longer",
        )  # fmt: skip

    # -- WireGuard and the agent ---------------------------------------------------------------------------

    def wireguard(self):
        name = self.p["wireguard_interface"]
        rc, out, err = self.run(["wg", "show", name, "peers"])
        peers = sorted(out.split()) if rc == 0 else []
        state = self.read(f"/sys/class/net/{name}/operstate").strip() or "absent"
        flags = self.read(f"/sys/class/net/{name}/flags").strip()
        up = bool(flags) and int(flags, 16) & 0x1
        expected = self.p["expected_peers"]
        same = expected is None or sorted(expected) == peers
        evidence = f"{name}: {'up' if up else 'down'} (operstate {state})\npeers: {len(peers)}"
        if expected is not None:
            evidence += f"\nexpected by the control plane: {len(expected)}, the same: {'yes' if same else 'no'}"
        self.add(
            "wireguard.interface", f"the {name} interface and its peers",
            f"wg show {name} peers; cat /sys/class/net/{name}/flags", evidence if rc == 0 else err,
            rc == 0 and up and same, "the interface is down" if not up else "the peers differ from the control plane's",
        )  # fmt: skip
        key_path = f"/etc/wireguard/{name}.key"
        try:
            st = os.stat(key_path)
            mode, owner = stat.S_IMODE(st.st_mode), st.st_uid
        except OSError:
            mode, owner = None, None
        key = self.read(key_path).strip()
        copies = self.copies_of(key) if key else []
        backups = ("~", ".bak", ".old", ".orig", ".dpkg-old", ".save")
        strays = sorted(p for p in glob.glob(f"/etc/wireguard/{name}*") if p.endswith(backups))
        ok = mode == 0o600 and owner == 0 and not copies and not strays
        self.add(
            "wireguard.private_key", f"{key_path}: its mode, owner and any copy of it",
            f"stat {key_path}; grep -rlF KEY /var/log /var/backups /var/cache /var/tmp /tmp /root /home",
            f"mode {oct(mode) if mode is not None else 'absent'}, owner uid {owner}\ncopies: {copies or 'none'}\n"
            f"backup files: {strays or 'none'}", ok, "the private key is exposed or copied",
        )  # fmt: skip

    def copies_of(self, needle):
        found = []
        data = needle.encode()
        for root in ("/var/log", "/var/backups", "/var/cache", "/var/tmp", "/tmp", "/root", "/home", "/run/log"):
            for folder, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        if os.path.islink(path) or os.path.getsize(path) > 64 * 1024 * 1024:
                            continue
                        with open(path, "rb") as handle:
                            if data in handle.read():
                                found.append(path)
                    except OSError:
                        continue
        return found

    def agent(self):
        port = self.p["agent_port"]
        if not port:
            self.add("agent.no_request_logs", "the agent", "", "", True,
                     not_applicable="this server has no agent (agent_port 0)")  # fmt: skip
            return
        _rc, out, _ = self.run(["systemctl", "show", "-p", "ActiveState,StandardOutput,StandardError,LogsDirectory",
                               "norex-agent.service"])  # fmt: skip
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        config_text = self.read("/etc/norex-agent/agent.json")
        try:
            config = json.loads(config_text)
        except ValueError:
            config = {}
        log_keys = sorted(k for k in config if "log" in k.lower())
        output_ok = props.get("StandardOutput") in ("null", "journal") and props.get("StandardError") in (
            "null", "journal", "inherit")  # fmt: skip
        ok = props.get("ActiveState") == "active" and not log_keys and output_ok and not props.get("LogsDirectory")
        self.add(
            "agent.no_request_logs", "the agent's unit and its configuration",
            "systemctl show -p ActiveState,StandardOutput,StandardError,LogsDirectory norex-agent.service; "
            "cat /etc/norex-agent/agent.json", "\n".join(f"{k}={v}" for k, v in sorted(props.items()))
            + f"\nlogging keys in agent.json: {log_keys or 'none'}", ok,
            "the agent is not running, or keeps output or a log",
        )  # fmt: skip
        self.agent_port(port)
        window = int(config.get("online_seconds", 0)) + int(config.get("purge_interval", 0))
        bound = self.p["agent_online_seconds_max"]
        self.add(
            "bounds.wireguard_endpoints", "how long WireGuard keeps a quiet device's endpoint",
            "cat /etc/norex-agent/agent.json (online_seconds, purge_interval)",
            f"online_seconds: {config.get('online_seconds')}\npurge_interval: {config.get('purge_interval')}\n"
            f"bound: {bound} s", props.get("ActiveState") == "active" and 0 < window <= bound,
            "the agent's purge is not in force within the bound",
        )  # fmt: skip

    def agent_port(self, port):
        rc, out, err = self.run(["nft", "-j", "list", "ruleset"])
        allowed = {ipaddress.ip_network(c, strict=False) for c in self.p["agent_cidrs"]}
        opened, wide = [], []
        if rc == 0:
            items = json.loads(out).get("nftables", [])
            for item in items:
                rule = item.get("rule")
                if not rule or not accepts(rule.get("expr", [])) or port not in dports(rule.get("expr", [])):
                    continue
                sources = saddrs(rule.get("expr", []), sets_of_table(items, rule))
                opened.append(f"{rule.get('chain')}: from {', '.join(map(str, sources)) if sources else 'anywhere'}")
                if not sources or any(not any(s.subnet_of(a) for a in allowed if a.version == s.version)
                                      for s in sources):  # fmt: skip
                    wide.append(opened[-1])
        self.add(
            "agent.port_control_plane_only", f"the firewall's rules for TCP port {port}",
            "nft -j list ruleset", "\n".join(opened) or (err if rc else "no rule opens the port"),
            rc == 0 and not wide, "the agent port is open beyond the control plane",
        )  # fmt: skip

    # -- memory-resident state, kernel ---------------------------------------------------------------------

    def bounds(self):
        path = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"
        value = self.read(path).strip()
        bound = self.p["conntrack_established_max"]
        if not value:
            self.add("bounds.conntrack", path, f"cat {path}", "(absent)", False,
                     not_applicable="no connection tracking in this kernel")  # fmt: skip
        else:
            udp = self.read("/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream").strip()
            self.add(
                "bounds.conntrack", "how long the connection table keeps a flow's destination",
                f"cat {path}; nf_conntrack_udp_timeout_stream", f"tcp established: {value} s\nudp stream: {udp} s\n"
                f"bound: {bound} s (the kernel's default is 432000 s, five days)",
                int(value) <= bound and (not udp or int(udp) <= bound), "the connection table keeps flows longer",
            )  # fmt: skip
        utmp = "/run/utmp"
        linked = os.path.islink(utmp) and os.readlink(utmp) == "/dev/null"
        self.add(
            "bounds.login_records_in_run", utmp, f"ls -l {utmp}",
            f"{utmp} -> /dev/null" if linked else ("absent" if not os.path.lexists(utmp) else "a file"),
            linked or not os.path.lexists(utmp), "current logins are recorded in /run/utmp",
        )  # fmt: skip

    def kernel(self):
        values = {p: self.read(f"/proc/sys/net/ipv4/conf/{p}/log_martians").strip() for p in ("all", "default")}
        evidence = "\n".join(f"net.ipv4.conf.{k}.log_martians = {v or '(absent)'}" for k, v in values.items())
        self.add(
            "kernel.no_log_martians", "net.ipv4.conf.{all,default}.log_martians",
            "sysctl net.ipv4.conf.all.log_martians net.ipv4.conf.default.log_martians", evidence,
            all(v == "0" for v in values.values()), "the kernel logs packets' source addresses",
        )  # fmt: skip
        pstore = sorted(glob.glob("/sys/fs/pstore/*")) + sorted(glob.glob("/var/lib/systemd/pstore/**", recursive=True))
        pstore = [p for p in pstore if os.path.isfile(p)]
        _rc, out, _ = self.run(["systemd-analyze", "cat-config", "systemd/pstore.conf"])
        storage = [line.split("=", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Storage=")]
        self.add(
            "kernel.no_pstore", "/sys/fs/pstore, /var/lib/systemd/pstore and pstore.conf",
            "ls /sys/fs/pstore /var/lib/systemd/pstore; systemd-analyze cat-config systemd/pstore.conf",
            f"files: {pstore or 'none'}\npstore Storage: {storage[-1] if storage else '(default: external)'}",
            not pstore and bool(storage) and storage[-1] == "none", "the kernel log's tail can be kept on disk",
        )  # fmt: skip
        logs, deleted = [], []
        for pid, comm, target in self.open_files():
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/")):
                continue
            name = target[: -len(" (deleted)")] if target.endswith(" (deleted)") else target
            if not LOG_NAME.search(name) or name.startswith("/run/log/journal/"):
                continue  # not a log, or the volatile journal (bounded by journald.runtime_cap)
            (deleted if target.endswith(" (deleted)") else logs).append(f"{comm}[{pid}] {target}")
        self.add(
            "kernel.no_open_log_files", "every process's open files",
            "ls -l /proc/*/fd", "\n".join(logs + deleted) or "none named like a log (the volatile journal aside)",
            not logs and not deleted, "a process holds a log file open",
        )  # fmt: skip

    # -- identity ------------------------------------------------------------------------------------------

    def identity(self):
        fingerprints = {}
        for path in sorted(glob.glob("/etc/ssh/ssh_host_*_key.pub")):
            parts = self.read(path).split()
            if len(parts) >= 2:
                try:
                    blob = base64.b64decode(parts[1])
                except ValueError:
                    continue
                fingerprints[parts[0]] = hashlib.sha256(blob).hexdigest()
        return {"machine_id": self.read("/etc/machine-id").strip(), "host_keys_sha256": fingerprints}

    def run_all(self):
        for step in (self.journald, self.daemons, self.storage, self.login_records, self.core_dumps,
                     self.shell_history, self.swap, self.capture, self.firewall_rules, self.resolver,
                     self.wireguard, self.agent, self.bounds, self.kernel):  # fmt: skip
            step()
        return self.checks


def parse_size(text):
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)B?\s*", text or "", re.IGNORECASE)
    if not match:
        return None
    return int(match.group(1)) * 1024 ** " KMGT".index((match.group(2) or " ").upper())


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def recording_expression(expressions):
    """The statements of an nftables rule (JSON) that log, queue, trace, duplicate or forward packets."""
    found = []
    for node in walk(expressions):
        found += [key for key in NFT_RECORDING if key in node]
        meta = node.get("meta") if isinstance(node.get("meta"), dict) else {}
        if meta.get("key") == "nftrace":
            found.append("nftrace")
    return ", ".join(sorted(set(found)))


def accepts(expressions):
    return any("accept" in e for e in expressions if isinstance(e, dict))


def dports(expressions):
    ports = set()
    for e in expressions:
        match = e.get("match") if isinstance(e, dict) else None
        if not match or not isinstance(match.get("left"), dict):
            continue
        payload = match["left"].get("payload", {})
        if payload.get("field") == "dport":
            right = match.get("right")
            values = right.get("set", []) if isinstance(right, dict) else [right]
            ports |= {v for v in values if isinstance(v, int)}
    return ports


def sets_of_table(items, rule):
    """The named sets (name: elements) of the table a rule is in, from `nft -j list ruleset`'s items."""
    return {
        i["set"].get("name"): i["set"].get("elem", [])
        for i in items
        if isinstance(i.get("set"), dict)
        and (i["set"].get("family"), i["set"].get("table")) == (rule.get("family"), rule.get("table"))
    }


def saddrs(expressions, named_sets=None):
    """The source networks a rule matches: literals, anonymous sets and named sets (@name, from named_sets)."""
    sources = []
    for e in expressions:
        match = e.get("match") if isinstance(e, dict) else None
        if not match or not isinstance(match.get("left"), dict):
            continue
        payload = match["left"].get("payload", {})
        if payload.get("field") == "saddr" and payload.get("protocol") in ("ip", "ip6"):
            right = match.get("right")
            values = right.get("set", []) if isinstance(right, dict) and "set" in right else [right]
            if isinstance(right, str) and right.startswith("@"):
                values = (named_sets or {}).get(right[1:], [])
            for value in values:
                if isinstance(value, dict) and "elem" in value:
                    value = value["elem"].get("val")
                if isinstance(value, dict) and "prefix" in value:
                    value = f"{value['prefix']['addr']}/{value['prefix']['len']}"
                if isinstance(value, str):
                    try:
                        sources.append(ipaddress.ip_network(value, strict=False))
                    except ValueError:
                        continue
    return sources


def main():
    module = AnsibleModule(
        argument_spec={
            "wireguard_interface": {"type": "str", "default": "wg0"},
            "expected_peers": {"type": "list", "elements": "str"},
            "journald_runtime_max_use": {"type": "str", "default": "16M"},
            "resolver_cache_max_ttl": {"type": "int", "default": 3600},
            "conntrack_established_max": {"type": "int", "default": 1800},
            "agent_port": {"type": "int", "default": 8443},
            "agent_cidrs": {"type": "list", "elements": "str", "default": []},
            "agent_online_seconds_max": {"type": "int", "default": 210},
        },
        supports_check_mode=True,
    )
    auditor = Auditor(module)
    checks = auditor.run_all()
    module.exit_json(changed=False, checks=checks, identity=auditor.identity(), in_container=auditor.in_container)


if __name__ == "__main__":
    main()
