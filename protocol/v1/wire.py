"""Interview events on the wire: serialized once, then numbered without being parsed again.

The state machine emits events with `seq` 0; `encode` turns one into its JSON text and the session
bus writes the event's number into that text (`number`) when it appends it. Every event model
declares `seq` right after `type`, so the placeholder is always the first `"seq":0` of the text.
"""

from __future__ import annotations

from protocol.v1.messages import UNSEQUENCED, Event

PLACEHOLDER = f'"seq":{UNSEQUENCED}'
_NUMBER_AT = len('"seq":')


def encode(event: Event) -> str:
    """The event's JSON text with the `seq` placeholder; the same bytes every socket gets."""
    if event.seq != UNSEQUENCED:
        raise ValueError("only events not yet numbered are encoded for the bus")
    return event.model_dump_json()


def number(body: str, seq: int) -> str:
    """`body` (from `encode`) with its `seq` set."""
    at = body.find(PLACEHOLDER)
    if at < 0:
        raise ValueError("not an encoded event")
    return f"{body[: at + _NUMBER_AT]}{seq}{body[at + len(PLACEHOLDER) :]}"
