"""The lab network on the host: one bridge, the lab internet namespace and its services.

The lab internet (namespace INET_NS) holds the gateway address every lab host routes through, the
authoritative DNS hierarchy (NSD) and a tiny web site. Nothing in it routes beyond the lab, and the
host drops any forwarded packet that would carry lab addresses anywhere else.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from norex.lab import plan
from norex.lab.dns import LabDNS, build_lab_dns
from norex.lab.processes import kill, pid_alive, read_pid, wait_gone
from norex.lab.state import cache_dir, lab_dir, run_dir, ssh_key
from norex.lab.system import LabError, delete_netns, link_exists, netns_inode, ok, run, spawn_detached
from norex.net import port_open

INET_VETH = "nxl-inet"
GUARD_TABLE = "norexlab_guard"
INET_ADDRESSES = [
    (plan.ROUTER4, plan.ROUTER6),
    (plan.ROOT_NS4, plan.ROOT_NS6),
    (plan.TLD_NS4, plan.TLD_NS6),
    (plan.ZONE_NS4, plan.ZONE_NS6),
    (plan.WEB4, plan.WEB6),
]


# Every lab server's systemd and services take inotify instances under the host's root user (about 9 for a
# converged server): the kernel's default of 128 per user holds about 13 servers, then boots fail.
INOTIFY_INSTANCES = 8192
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


def ensure_host_limits() -> None:
    """Raise (never lower) the host's per-user inotify instance limit to what a full lab needs."""
    try:
        if int(INOTIFY_LIMIT.read_text()) < INOTIFY_INSTANCES:
            INOTIFY_LIMIT.write_text(f"{INOTIFY_INSTANCES}\n")
    except OSError as exc:
        raise LabError(f"cannot raise {INOTIFY_LIMIT} to {INOTIFY_INSTANCES}: {exc.strerror or exc}") from None


def ensure_network() -> LabDNS:
    """Bring up (or repair) the bridge, the guard, the lab internet and its services. Idempotent."""
    run_dir().mkdir(parents=True, exist_ok=True)
    ensure_host_limits()
    ensure_ssh_key()
    _ensure_bridge()
    _ensure_guard()
    _ensure_inet()
    dns = build_lab_dns(lab_dir() / "dns")
    for inst in dns.instances:
        tag = "nsd-" + (inst.zone.strip(".").replace(".", "-") or "root")
        # The collector first: NSD connects to its socket when it starts.
        _ensure_daemon(f"{tag}-tap", inst.tap_command(), marker=str(inst.tap_socket))
        _ensure_daemon(tag, inst.command(), marker=str(inst.config), netns=plan.INET_NS, fingerprint=inst.fingerprint())
    _ensure_daemon(
        "web",
        [sys.executable, "-m", "norex.lab.website", plan.WEB4, plan.WEB6],
        marker="norex.lab.website",
        netns=plan.INET_NS,
        fingerprint=_website_fingerprint(),
    )
    _ensure_daemon("apt-cacher-ng", _acng_command(), marker="apt-cacher-ng")
    _wait_ready(dns)
    return dns


def _website_fingerprint() -> str:
    """The web site's code and the lists it serves: a running site from older ones is restarted."""
    from norex.lab import website

    digest = hashlib.sha256(Path(website.__file__).read_bytes())
    for path in sorted(website.LISTS.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ensure_ssh_key() -> Path:
    key = ssh_key()
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key.with_suffix(".pub").unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "norex-lab", "-f", str(key)])
    return key


def _ensure_bridge() -> None:
    if not link_exists(plan.BRIDGE):
        run(["ip", "link", "add", plan.BRIDGE, "type", "bridge"])
    # A handful of hosts: flood multicast instead of depending on MLD snooping state.
    run(["ip", "link", "set", plan.BRIDGE, "type", "bridge", "mcast_snooping", "0"])
    run(["ip", "addr", "replace", f"{plan.HOST4}/{plan.PREFIX4}", "dev", plan.BRIDGE])
    run(["ip", "-6", "addr", "replace", f"{plan.HOST6}/{plan.PREFIX6}", "dev", plan.BRIDGE, "nodad"])
    run(["ip", "link", "set", plan.BRIDGE, "up"])


def _ensure_guard() -> None:
    """Drop anything the host would forward between the lab and the outside world, and keep lab
    hosts off the host's own services except the apt cache.

    Where br_netfilter is loaded, bridged lab traffic passes this hook too: link-local, multicast and
    broadcast stay allowed, or IPv6 neighbour discovery between lab hosts would break.
    """
    lab4, lab6 = plan.NET4.supernet(), plan.ULA48
    ruleset = f"""
table inet {GUARD_TABLE} {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    ip saddr {lab4} ip daddr != {{ {lab4}, 224.0.0.0/4, 255.255.255.255 }} drop
    ip daddr {lab4} ip saddr != {{ {lab4}, 0.0.0.0 }} drop
    ip6 saddr {lab6} ip6 daddr != {{ {lab6}, fe80::/10, ff00::/8 }} drop
    ip6 daddr {lab6} ip6 saddr != {{ {lab6}, fe80::/10, :: }} drop
  }}
  chain input {{
    type filter hook input priority -10; policy accept;
    iifname "{plan.BRIDGE}" ct state established,related accept
    iifname "{plan.BRIDGE}" meta l4proto {{ icmp, ipv6-icmp }} accept
    iifname "{plan.BRIDGE}" ip daddr {plan.HOST4} tcp dport {plan.APT_CACHE_PORT} accept
    iifname "{plan.BRIDGE}" drop
  }}
}}
"""
    run(["nft", "-f", "-"], input=f"table inet {GUARD_TABLE}\ndelete table inet {GUARD_TABLE}\n" + ruleset)


def _ensure_inet() -> None:
    ns = plan.INET_NS
    if netns_inode(ns) is None:
        run(["ip", "netns", "add", ns])
    if not link_exists("eth0", netns=ns):
        if link_exists(INET_VETH):
            run(["ip", "link", "del", INET_VETH])
        run(["ip", "link", "add", INET_VETH, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", INET_VETH, "master", plan.BRIDGE, "up"])
    run(["ip", "link", "set", "lo", "up"], netns=ns)
    for v4, v6 in INET_ADDRESSES:
        run(["ip", "addr", "replace", f"{v4}/{plan.PREFIX4}", "dev", "eth0"], netns=ns)
        run(["ip", "-6", "addr", "replace", f"{v6}/{plan.PREFIX6}", "dev", "eth0", "nodad"], netns=ns)
    run(["ip", "link", "set", "eth0", "up"], netns=ns)
    # The lab internet routes between lab hosts only: it has no route anywhere else.
    run(
        [
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.conf.eth0.send_redirects=0",
        ],
        netns=ns,
    )


def _pidfile(tag: str) -> Path:
    return run_dir() / f"{tag}.pid"


def _ensure_daemon(tag: str, cmd: list[str], *, marker: str, netns: str | None = None, fingerprint: str = "") -> None:
    """Start the daemon unless it runs; restart it when it was started from another config (fingerprint)."""
    pidfile, stamp = _pidfile(tag), run_dir() / f"{tag}.fingerprint"
    pid = read_pid(pidfile)
    if pid_alive(pid, marker):
        running = stamp.read_text() if stamp.exists() else ""
        if running == fingerprint:
            return
        kill([pid], 15)
        if not wait_gone([pid], 5):
            kill([pid])
            wait_gone([pid], 2)
    pid = spawn_detached(cmd, stdout=run_dir() / f"{tag}.out", netns=netns)
    pidfile.write_text(f"{pid}\n")
    if fingerprint:
        stamp.write_text(fingerprint)
    else:
        stamp.unlink(missing_ok=True)


def _acng_command() -> list[str]:
    cache = cache_dir() / "apt-cacher-ng"
    logs = run_dir() / "apt-cacher-ng"
    conf = run_dir() / "apt-cacher-ng.conf.d"
    for folder in (cache, logs, conf):
        folder.mkdir(parents=True, exist_ok=True)
    # A plain caching proxy on the lab side only: no remapping (servers keep their own mirror URLs),
    # no CONNECT pass-through (nothing but package files leaves through it).
    (conf / "acng.conf").write_text(
        f"CacheDir: {cache}\nLogDir: {logs}\nBindAddress: {plan.HOST4}\nPort: {plan.APT_CACHE_PORT}\n"
        f"SocketPath: {run_dir() / 'apt-cacher-ng.socket'}\nPidFile: {run_dir() / 'acng-self.pid'}\n"
        "ForeGround: 1\nVerboseLog: 0\nExThreshold: 4\n"
    )
    return ["apt-cacher-ng", "-c", str(conf)]


def _wait_ready(dns: LabDNS, timeout: float = 20) -> None:
    checks = {
        "apt-cacher-ng": lambda: port_open(plan.HOST4, plan.APT_CACHE_PORT),
        "web site": lambda: port_open(plan.WEB4, 80),
    }
    for inst in dns.instances:
        checks[f"DNS for {inst.zone!r}"] = lambda i=inst: ok(
            ["dig", "+norec", "+time=1", "+tries=1", f"@{i.address4}", i.zone, "SOA"]
        )
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    while pending:
        pending = {k: f for k, f in pending.items() if not f()}
        if pending and time.monotonic() > deadline:
            raise LabError(
                f"lab internet not ready after {timeout:.0f} s: {', '.join(pending)} (see {run_dir()}/*.out)"
            )
        if pending:
            time.sleep(0.2)


def forget_neighbours(*addresses: str) -> None:
    """Drop cached MAC addresses for a lab address that is about to change hands.

    A new server or device reusing an address has a new MAC; without this the router keeps sending
    the first packets (a WireGuard handshake, say) to the old one until its neighbour entry expires.
    """
    for address in addresses:
        run(["ip", "neigh", "flush", "to", address], check=False)
        if netns_inode(plan.INET_NS) is not None:
            run(["ip", "neigh", "flush", "to", address], check=False, netns=plan.INET_NS)


def teardown_network() -> None:
    """Stop the lab internet's services and remove the namespace, bridge and guard."""
    for pidfile in run_dir().glob("*.pid"):
        pid = read_pid(pidfile)
        if pid and pid_alive(pid):
            kill([pid], 15)
            if not wait_gone([pid], 5):
                kill([pid])
        pidfile.unlink(missing_ok=True)
    delete_netns(plan.INET_NS)
    for link in (INET_VETH, plan.BRIDGE):
        if link_exists(link):
            run(["ip", "link", "del", link])
    run(["nft", "delete", "table", "inet", GUARD_TABLE], check=False)


def is_up() -> bool:
    return link_exists(plan.BRIDGE) and netns_inode(plan.INET_NS) is not None
