"""Render deploy/nginx.conf for other upstream nodes and another listen address.

    python deploy/render_nginx.py --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002 \
        --listen 127.0.0.1:8080 > /tmp/site.conf

Only the `server` lines of the upstream blocks and the `listen` line change; every other line is
the file compose runs. The test suite renders it for loopback nodes, and a blue-green
switch renders it for the new colour's nodes. `resolve` is kept for host names and dropped for
IP addresses (there is nothing to resolve).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf")
UPSTREAM = re.compile(r"(?ms)^(upstream [\w-]+ \{\n)(.*?)(^\})")
SERVER = re.compile(r"^(\s*)server\s+(\S+)((?:\s+[^;\s]+)*);\s*$")
LISTEN = re.compile(r"(?m)^(\s*)listen\s+\S+;")


class RenderError(ValueError):
    pass


def _is_ip(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _render_block(body: str, upstreams: list[str]) -> str:
    lines = body.splitlines(keepends=True)
    found = [(i, m) for i, m in ((i, SERVER.match(line)) for i, line in enumerate(lines)) if m]
    if not found:
        raise RenderError("an upstream block without server lines")
    first, match = found[0]
    indent, params = match.group(1), match.group(3).split()
    rendered = []
    for address in upstreams:
        own = [p for p in params if not (p == "resolve" and _is_ip(address))]
        rendered.append(f"{indent}server {' '.join([address, *own])};\n")
    servers = {i for i, _ in found}
    kept = [line for i, line in enumerate(lines) if i not in servers]
    return "".join(kept[:first] + rendered + kept[first:])


def render(template: str, upstreams: list[str], listen: str) -> str:
    """The template with `upstreams` in every upstream block and `listen` as the listen address.

    Each block keeps the parameters of its first server line for every new server.
    """
    if not upstreams:
        raise RenderError("at least one upstream address is needed")
    text, count = UPSTREAM.subn(
        lambda m: m.group(1) + _render_block(m.group(2), upstreams) + m.group(3), template
    )
    if count == 0:
        raise RenderError("no upstream block in the template")
    text, count = LISTEN.subn(lambda m: f"{m.group(1)}listen {listen};", text)
    if count != 1:
        raise RenderError(f"expected one listen line in the template, found {count}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", action="append", required=True, help="host:port of a node")
    parser.add_argument("--listen", required=True, help="what nginx listens on (port or addr:port)")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.template.read_text("utf-8"), args.upstream, args.listen))
    except RenderError as exc:
        sys.stderr.write(f"render_nginx: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
