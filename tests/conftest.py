"""Shared fixtures: a MongoDB-protocol server per test session, a database per test, the app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pymongo.errors import PyMongoError
from starlette.applications import Starlette

from core.settings import Settings
from http_api.app import create_app
from http_api.services import AppServices
from load.harness import MongoServer, RedisClusterServers


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MONGODB_URL when set (real MongoDB in CI), else a SecantusDB server for this session."""
    url = os.environ.get("MONGODB_URL")
    if url:
        yield url
        return
    folder = tmp_path_factory.mktemp("mongo")
    with MongoServer(folder / "db", folder / "secantusd.log") as server:
        server.start()
        yield server.url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A private Redis Cluster of 3 masters on loopback ports, started once per test process
    that needs it and shared by its tests (each uses its own key prefix)."""
    with RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        cluster.start()
        yield cluster


def make_settings(mongo_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "mongodb_url": mongo_url,
        "mongodb_db": f"t_{uuid.uuid4().hex[:16]}",
        "redis_url": "",
        "redis_key_prefix": f"t:{uuid.uuid4().hex[:12]}:",
        "celery_broker_url": "",
        "data_dir": data_dir,
        "bcrypt_rounds": 4,
        "node_id": "test-node",
        "openai_api_key": None,
        "sendpulse_client_id": "",
        "cloudpayments_public_id": "",
        "log_level": "WARNING",
        "public_base_url": "http://testserver",
        # The free tier has its own tests; elsewhere a user may start as many as a test needs.
        "free_interviews_per_month": 1000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


ADAPTERS = ("in-process", "redis")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Suites marked `both_adapters` run once with the embedded adapters and once with Redis."""
    if "adapter" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_adapters"
    ):
        metafunc.parametrize("adapter", ADAPTERS)


@pytest.fixture
def adapter() -> str:
    """Which adapters the app uses: in process, unless the suite runs over both."""
    return "in-process"


@pytest.fixture
def settings(
    mongo_url: str,
    redis_url: str,
    tmp_path: Path,
    settings_overrides: dict[str, Any],
    adapter: str,
) -> Settings:
    shared = {"redis_url": redis_url} if adapter == "redis" else {}
    return make_settings(mongo_url, tmp_path, **{**shared, **settings_overrides})


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        try:
            yield app
        finally:
            services: AppServices = app.state.services
            # Tidying only: every test has a database of its own, so one left behind on a
            # database server too busy to answer in time harms no other test.
            with contextlib.suppress(PyMongoError):
                await services.infra.db.client.drop_database(settings.mongodb_db)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
def services(app: Starlette) -> AppServices:
    result: AppServices = app.state.services
    return result


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@contextlib.asynccontextmanager
async def serve(app: Starlette, **config: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port, in this event loop."""
    send_buffer = config.pop("send_buffer", None)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        # Accepted sockets inherit it: lets a test reach flow control without megabytes of data.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
            ws_max_size=config.pop("ws_max_size", 64 * 1024),
            **config,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest.fixture
async def live_server(app: Starlette) -> AsyncIterator[str]:
    """host:port of the app served over real HTTP and WebSocket."""
    async with serve(app) as address:
        yield address
