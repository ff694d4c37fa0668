from __future__ import annotations

import socket
from contextlib import closing

from runtime.errors import StartupError


def port_is_free(host: str, port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def require_free_port(setting: str, host: str, port: int) -> None:
    if not port_is_free(host, port):
        raise StartupError(
            setting, f"port {port} on {host} is already in use (set {setting} to another port)"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_run(count: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """The first of `count` consecutive free ports (the API replicas of `omniflow dev`)."""
    for _ in range(tries):
        first = free_port(host)
        if all(port_is_free(host, first + i) for i in range(1, count)):
            return first
    raise StartupError("OMNIFLOW_API_PORT", f"found no {count} consecutive free ports on {host}")
