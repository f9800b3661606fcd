"""Services as processes, started the way the run command starts them: ``python -m services.<name>``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.infra import ROOT

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port no process listens on, and not one this test run handed out before: the kernel may give a
    just-released port to the next bind, and two services of one fixture then got the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class ServiceProcess:
    """One service process with its own port and log; it can be killed and started again."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env, f"{name.upper()}_PORT": str(self.port)}
        self._log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], cwd=ROOT, env=self._env, stdout=log, stderr=log
        )
        log.close()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or (self._process and self._process.poll() is not None):
                raise AssertionError(f"{self.name} is not healthy:\n{self.log()[-4000:]}")
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(sig)
            self._process.wait(timeout=30)

    def tasks(self) -> str:
        """Where each of the service's tasks waits now: what it logs on SIGUSR1 (``logs.tasks_on_signal``)."""
        if not self._process or self._process.poll() is not None:
            return f"{self.name} is not running"
        before = len(self.log())
        self._process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        return self.log()[before:]

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
