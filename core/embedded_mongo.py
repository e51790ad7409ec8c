"""Start a local MongoDB-wire-protocol server (SecantusDB's `secantusd-py`) as a child process.

Only the development run and the tests use this; production points MONGODB_URL at MongoDB.
The server is an executable of the dev dependencies; nothing here imports it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

EXECUTABLE = "secantusd-py"


class EmbeddedMongoError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_executable() -> str:
    beside_python = Path(sys.executable).parent / EXECUTABLE
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(EXECUTABLE)
    if found is None:
        raise EmbeddedMongoError(
            f"{EXECUTABLE} not found: install the dev extras (pip install -e '.[dev]') "
            "or set MONGODB_URL"
        )
    return found


class EmbeddedMongo:
    """A SecantusDB server on a free loopback port; `url` is ready once `start()` returns."""

    def __init__(self, storage_path: Path | str, port: int | None = None) -> None:
        self.storage_path = str(storage_path)
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60.0) -> None:
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
            self._log_file = Path(self.storage_path).parent / "secantusd.log"
        args = [
            _find_executable(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            self.storage_path,
            "--log-level",
            "WARNING",
        ]
        output = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            args,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedMongoError(
                    f"{EXECUTABLE} exited with code {self._process.returncode}"
                    + (f"; see {self._log_file}" if self._log_file else "")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    log.info("embedded mongo started", extra={"port": self.port})
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise EmbeddedMongoError(f"{EXECUTABLE} did not listen on port {self.port} in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
