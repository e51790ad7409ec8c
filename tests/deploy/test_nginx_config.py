"""deploy/nginx.conf against the app's own limits, and its rendering for other nodes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.deploy.processes import ROOT, Nginx, nginx_binary

CONF = ROOT / "deploy" / "nginx.conf"
# The longest an answer over REST waits for its grade (http_api/routes/interviews.py).
REST_GRADE_WAIT_SEC = 150


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "render_nginx.py"), *args],
        capture_output=True,
        text=True,
    )


def location(text: str, prefix: str) -> str:
    found = re.search(r"location " + re.escape(prefix) + r" \{(.*?)\n    \}", text, re.S)
    assert found, prefix
    return found.group(1)


def seconds(value: str) -> int:
    found = re.fullmatch(r"(\d+)([sm]?)", value)
    assert found, value
    return int(found.group(1)) * (60 if found.group(2) == "m" else 1)


def test_the_proxy_waits_longer_and_takes_bigger_bodies_than_the_app() -> None:
    text = CONF.read_text()
    rest = location(text, "/")
    timeout = re.search(r"proxy_read_timeout (\w+);", rest)
    assert timeout and seconds(timeout.group(1)) > REST_GRADE_WAIT_SEC
    size = re.search(r"client_max_body_size (\d+)m;", text)
    assert size and int(size.group(1)) * 1024 * 1024 >= Settings(_env_file=None).max_bulk_body_bytes
    for prefix in ("/", "/ws/"):
        block = location(text, prefix)
        assert "proxy_set_header Host $forwarded_host;" in block
    assert "map $http_host $forwarded_host" in text
    servers = re.findall(r"^\s*server \S+:\d+[^;]*;", text, re.M)
    assert servers and all("max_fails=0" in s for s in servers), servers


def test_rendering_changes_only_upstreams_and_listen(tmp_path: Path) -> None:
    done = render("--upstream", "127.0.0.1:8001", "--upstream", "green-1:8000", "--listen", "9000")
    assert done.returncode == 0, done.stderr
    original = CONF.read_text().splitlines()
    rendered = done.stdout.splitlines()
    changed = [line for line in rendered if line not in original]
    assert changed.count("    server 127.0.0.1:8001 max_fails=0;") == 2, "resolve dropped for IPs"
    assert changed.count("    server green-1:8000 resolve max_fails=0;") == 2
    assert "    listen 9000;" in changed and len(changed) == 5
    assert [line for line in original if line not in rendered] == [
        line for line in original if re.match(r"\s*(server api\d|listen )", line)
    ]
    assert render("--listen", "9000").returncode != 0, "an upstream is required"


def test_debian_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    nginx = Nginx(tmp_path, ["127.0.0.1:8001", "127.0.0.1:8002"])
    main = nginx.render()
    check = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("template", ["upstream api {\n}\nlisten 80;\n", "no blocks\n"])
def test_a_template_without_servers_is_refused(tmp_path: Path, template: str) -> None:
    path = tmp_path / "t.conf"
    path.write_text(template)
    done = render("--upstream", "127.0.0.1:1", "--listen", "1", "--template", str(path))
    assert done.returncode == 1 and done.stderr.startswith("render_nginx: ")
