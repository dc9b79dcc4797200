"""A real redis-server (Debian's) on loopback for the shared-store tests and benchmark.

Each instance has its own port and temp dir, no persistence (no RDB, no AOF), and runs in
the foreground as our child, so it can be paused (SIGSTOP: a slow Redis), stopped and
started again on the same port. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "free_port", "missing_redis"]

_START_TIMEOUT = 10.0


def missing_redis() -> str | None:
    """Why redis-server cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py is not installed (pip install mxresolve[redis])"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``. Use as a context manager.

    Args:
        maxmemory: bytes, with ``maxmemory_policy`` (Redis's own eviction), or 0 for none.
    """

    def __init__(self, *, maxmemory: int = 0, maxmemory_policy: str = "allkeys-lru") -> None:
        self.port = free_port()
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.dir = Path(tempfile.mkdtemp(prefix="mxredis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _args(self) -> list[str]:
        args = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.maxmemory:
            args += [
                "--maxmemory",
                str(self.maxmemory),
                "--maxmemory-policy",
                self.maxmemory_policy,
            ]
        return args

    def start(self) -> RedisServer:
        if self.process is not None:
            raise RuntimeError("already running")
        self.process = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {_START_TIMEOUT} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (a slow Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)  # our own mkdtemp only

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
