"""The JSON Schema of protocol v1, for the browser client and the load tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protocol.v1.messages import VERSION, client_adapter, server_adapter

SCHEMA_PATH = Path(__file__).parent / "schema.json"


def protocol_schema() -> dict[str, Any]:
    """The whole protocol: the document validates any frame; `#/client`, `#/server` one side."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Interview socket protocol v{VERSION}",
        "protocol": VERSION,
        "oneOf": [{"$ref": "#/client"}, {"$ref": "#/server"}],
        "client": client_adapter.json_schema(ref_template="#/client/$defs/{model}"),
        "server": server_adapter.json_schema(
            ref_template="#/server/$defs/{model}", mode="serialization"
        ),
    }
