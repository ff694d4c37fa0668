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
