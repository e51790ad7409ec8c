"""`make run` after a crash, and the staff commands beside a running product (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from core.embedded_mongo import (
    EXECUTABLE,
    EmbeddedMongo,
    ServerRecord,
    free_port,
    process_started,
    read_record,
    run_file,
)
from tests.deploy.processes import Node, clean_env, gone, run_command, until

pytestmark = pytest.mark.integration

ADMIN = "staff@example.ru"
ADMIN_PASSWORD = "staff password 1"


def product_env(data_dir: Path) -> dict[str, str]:
    return clean_env(
        APP_ENV="development",
        DATA_DIR=str(data_dir),
        LOG_LEVEL="INFO",
        BCRYPT_ROUNDS="4",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )


async def logs_in(node: Node, email: str) -> bool:
    async with httpx.AsyncClient(base_url=node.url) as http:
        body = {"email": email, "password": ADMIN_PASSWORD}
        response = await http.post("/api/v1/auth/login", json=body)
    return response.status_code == 200 and response.json()["user"]["role"] == "admin"


def staff(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run_command(args, env)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


# These start several Python processes each; a loaded machine needs more than the default.
@pytest.mark.timeout(300)
async def test_staff_commands_work_beside_a_running_product(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = product_env(data)
    node = Node.create("run", env, tmp_path).start()
    try:
        await node.wait_ready()
        record = read_record(data / "mongo")
        assert record is not None and record.owner_pid == node.pid

        # Each command uses the product's database server; none starts a second one.
        created = staff(["create-admin"], {**env, "ADMIN_EMAIL": ADMIN})
        assert ADMIN in created.stdout
        assert "using the embedded database of the running product" in created.stderr
        assert await logs_in(node, ADMIN), "the running product sees the new admin"
        seeded = staff(["seed"], env)
        assert seeded.stdout.startswith("seeded ")
        backup = staff(["backup"], env)
        archive = Path(backup.stdout.strip().rsplit(" ", 1)[1])
        assert archive.parent == data / "backups" and archive.is_file()
        refused = run_command(["restore", str(archive)], env)
        assert refused.returncode == 1
        assert "is not empty" in refused.stderr and "FORCE=1" in refused.stderr
        assert read_record(data / "mongo") == record, "still the product's own server"
    finally:
        node.stop()

    # Without a running product a command starts its own server and stops it again.
    other = tmp_path / "restored"
    restored = staff(["restore", str(archive)], product_env(other))
    assert "restored" in restored.stdout
    assert read_record(other / "mongo") is None, "no server left behind"
    mongo = EmbeddedMongo(other / "mongo")
    mongo.start()
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.url)
        users = client["interview_platform"]["users"]
        assert [u["email"] for u in users.find()] == [ADMIN]
        client.close()
    finally:
        mongo.stop()


@pytest.mark.timeout(300)
async def test_make_run_starts_again_after_a_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = product_env(data)
    node = Node.create("run-1", env, tmp_path).start()
    try:
        await node.wait_ready()
        staff(["create-admin", "--email", ADMIN], env)
        record = read_record(data / "mongo")
        assert record is not None
        # The OOM killer: the web process dies at once, its database server follows it.
        node.kill()
        await until(
            lambda: gone(record.pid, record.server_started), 30, "the server died with its owner"
        )
        node = Node.create("run-2", env, tmp_path).start()
        await node.wait_ready()
        assert await logs_in(node, ADMIN), "the data survived the crash"
    finally:
        node.stop()


@pytest.mark.timeout(300)
async def test_a_start_stops_a_stale_server_left_by_a_crashed_run_and_says_so(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    storage = data / "mongo"
    storage.mkdir(parents=True)
    # What a crash leaves without a parent-death signal: the server, and a run file naming an
    # owner that is gone.
    port = free_port()
    stale = subprocess.Popen(
        [
            str(Path(sys.executable).parent / EXECUTABLE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage.resolve()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        owner = subprocess.Popen(["true"])
        owner_started = process_started(owner.pid)
        owner.wait()
        deadline = time.monotonic() + 30
        while process_started(stale.pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run_file(storage).write_text(
            json.dumps(
                ServerRecord(
                    pid=stale.pid,
                    port=port,
                    storage_path=str(storage.resolve()),
                    server_started=process_started(stale.pid),
                    owner_pid=owner.pid,
                    owner_started=owner_started or 1,
                ).as_json()
            )
        )

        node = Node.create("after-crash", product_env(data), tmp_path).start()
        try:
            await node.wait_ready()
            assert stale.poll() is not None, "the stale server was stopped"
            log = node.tail(20000)
            assert "stopping the embedded database server left by a previous run" in log
            assert f'"pid": {stale.pid}' in log
            record = read_record(storage)
            assert record is not None and record.owner_pid == node.pid
        finally:
            node.stop()
    finally:
        if stale.poll() is None:
            stale.kill()
        stale.wait(timeout=10)
