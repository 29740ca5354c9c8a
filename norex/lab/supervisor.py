"""A lab server's supervisor: keeps systemd-nspawn running across reboots from inside, as a real machine
comes back after `systemctl reboot`, and powers the server off on SIGTERM.

Started detached by norex.lab.servers: python -m norex.lab.supervisor NAME
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from norex.lab.processes import descendants, ns_inode
from norex.lab.servers import kill_container, mount, nspawn_command, paths
from norex.lab.system import is_mounted, unmount

REBOOT_EXIT = 133  # systemd-nspawn's exit status when the container asked for a reboot


def supervise(name: str) -> int:
    p = paths(name)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # nspawn turns this into an orderly poweroff

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    rc = 0
    while not stopping:
        mount(name)
        with open(p["console"], "ab") as console:
            child = subprocess.Popen(
                nspawn_command(name), stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT
            )
        record_init(name, child.pid)
        rc = child.wait()
        if rc != REBOOT_EXIT:
            break
    kill_container(name)
    if is_mounted(p["rootfs"]):
        unmount(p["rootfs"])
    return 0 if stopping else rc


def record_init(name: str, nspawn_pid: int) -> None:
    """Note the container's PID namespace so that its processes can be found even if nspawn dies."""
    deadline = time.monotonic() + 10
    host_ns = ns_inode("self", "pid")
    while time.monotonic() < deadline:
        for pid in descendants(nspawn_pid):
            inode = ns_inode(pid, "pid")
            if inode and inode != host_ns:
                paths(name)["init"].write_text(f"{inode}\n")
                return
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1]))
