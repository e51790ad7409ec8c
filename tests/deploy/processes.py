"""Real processes for the deployment tests: product nodes, staff commands, Celery, Redis, nginx.

Every wait has a deadline and checks that the process it waits for is still alive, so a
failure says which process died and shows the end of its log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.embedded_mongo import free_port, process_started

ROOT = Path(__file__).resolve().parents[2]
# Vendor credentials of the caller's shell must not turn real services on.
UNSET = (
    "OPENAI_API_KEY",
    "SENDPULSE_CLIENT_ID",
    "SENDPULSE_CLIENT_SECRET",
    "CLOUDPAYMENTS_PUBLIC_ID",
    "CLOUDPAYMENTS_API_SECRET",
    "MONGODB_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
)


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(values)
    return env


async def until(
    condition: Callable[[], Awaitable[bool] | bool],
    timeout: float,
    what: str,
    alive: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll `condition` until it holds; fail after `timeout` s or when `alive` reports a death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        dead = alive()
        if dead:
            raise AssertionError(f"{what}: {dead}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s\n{alive() or ''}")


@dataclass
class Proc:
    """A child process with its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def death(self) -> str | None:
        """None while it runs, else how it ended and the end of its log."""
        if self.running():
            return None
        code = self.process.returncode if self.process is not None else None
        return f"{self.name} exited with {code}:\n{self.tail()}"

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer would."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=15)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it outlasts `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def python(name: str, module_args: list[str], env: dict[str, str], log: Path) -> Proc:
    return Proc(name, [sys.executable, "-m", *module_args], env, log)


@dataclass
class Node(Proc):
    """`python -m core.cli run`, the entry point of `make run` and of the image."""

    port: int = 0

    @classmethod
    def create(cls, name: str, env: dict[str, str], folder: Path) -> Node:
        port = free_port()
        return cls(
            name,
            [sys.executable, "-m", "core.cli", "run"],
            {**env, "HOST": "127.0.0.1", "PORT": str(port), "NODE_ID": name},
            folder / f"{name}.log",
            port=port,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 90.0) -> None:
        async with httpx.AsyncClient(timeout=5) as http:

            async def ready() -> bool:
                try:
                    return (await http.get(self.url + "/health/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, timeout, f"{self.name} ready", self.death)


def run_command(
    args: list[str], env: dict[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """A staff command (`python -m core.cli ...`) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gone(pid: int, started: int | None) -> bool:
    now = process_started(pid)
    return now is None or (started is not None and now != started)


@dataclass
class RedisServer:
    """A private redis-server on a free port, nothing saved to disk."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.proc = Proc("redis", args, dict(os.environ), self.folder / "redis.log").start()

        async def pong() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await until(pong, 30, "redis-server listening", self.proc.death)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()


def nginx_binary() -> str:
    """Debian's nginx (`make nginx` installs it); NGINX_PATH points at another one."""
    candidates = [os.environ.get("NGINX_PATH", ""), shutil.which("nginx") or "", "/usr/sbin/nginx"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(
        "nginx is not installed: run `make nginx` (apt-get install nginx-light) or set NGINX_PATH"
    )


@dataclass
class Nginx:
    """deploy/nginx.conf rendered for loopback nodes, under a minimal main configuration."""

    folder: Path
    upstreams: list[str]
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self) -> Path:
        rendered = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "render_nginx.py")]
            + [arg for up in self.upstreams for arg in ("--upstream", up)]
            + ["--listen", f"127.0.0.1:{self.port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        site = self.folder / "site.conf"
        site.write_text(rendered)
        temp = {t: self.folder / t for t in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        main = self.folder / "nginx.conf"
        # What the stock nginx.conf around conf.d/*.conf provides, with paths in our folder.
        main.write_text(
            "daemon off;\nworker_processes 1;\n"
            f"pid {self.folder / 'nginx.pid'};\n"
            f"error_log {self.folder / 'error.log'} notice;\n"
            + ("user root;\n" if os.geteuid() == 0 else "")
            + "events { worker_connections 1024; }\nhttp {\n"
            + f"  client_body_temp_path {temp['body']};\n"
            + f"  proxy_temp_path {temp['proxy']};\n"
            + f"  fastcgi_temp_path {temp['fastcgi']};\n"
            + f"  uwsgi_temp_path {temp['uwsgi']};\n"
            + f"  scgi_temp_path {temp['scgi']};\n"
            + f"  include {site};\n}}\n"
        )
        return main

    async def start(self) -> None:
        main = self.render()
        binary = nginx_binary()
        error_log = str(self.folder / "error.log")
        check = subprocess.run(
            [binary, "-t", "-p", str(self.folder), "-c", str(main), "-e", error_log],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, f"nginx -t refused the configuration:\n{check.stderr}"
        self.proc = Proc(
            "nginx",
            [binary, "-p", str(self.folder), "-c", str(main), "-e", error_log],
            dict(os.environ),
            self.folder / "nginx.out",
        ).start()

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await until(listening, 30, "nginx listening", self.proc.death)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)
