"""Small network probes shared by the lab, the demo and the backends: is a port open, a free port, an SSH banner."""

from __future__ import annotations

import socket
import time


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """A TCP connection to host:port is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a service started on loopback next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ssh_banner(host: str, port: int, timeout: float = 5.0) -> bool:
    """sshd answers with its banner (an accepted TCP connection alone can come before sshd is ready)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            banner = b""
            while len(banner) < 4:
                chunk = conn.recv(4 - len(banner))
                if not chunk:
                    break
                banner += chunk
            return banner == b"SSH-"
    except OSError:
        return False


def wait_for_ssh(host: str, port: int = 22, timeout: float = 300.0, interval: float = 2.0) -> None:
    """Return once sshd sends its banner; TimeoutError when it has not within timeout seconds."""
    deadline = time.monotonic() + timeout
    while not ssh_banner(host, port, timeout=min(5.0, timeout)):
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"no SSH banner on port {port} within {timeout:.0f} s")
        time.sleep(interval)
