"""One streamed Chat Completions call as the adapter sees it: chunks in, feedback text out."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.evaluator.jsonstream import FieldStream
from engine.evaluator.prompting import FEEDBACK_FIELD
from engine.evaluator.retry import MalformedStream


@dataclass
class StreamedCall:
    """What one call produced so far: the model's text, the feedback shown, how it ended."""

    decoder: FieldStream = field(default_factory=lambda: FieldStream(FEEDBACK_FIELD))
    content: list[str] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    refused: bool = False
    usage: tuple[int, int] | None = None

    def take(self, chunk: object) -> str:
        """Record one `chat.completion.chunk` (parsed JSON); return the feedback text it adds."""
        if not isinstance(chunk, dict):
            raise MalformedStream("a chunk is not a JSON object")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = (
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
            )
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise MalformedStream("choices is not a list")
        text = ""
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise MalformedStream("delta is not an object")
            if delta.get("refusal"):
                self.refused = True
            content = delta.get("content")
            if content:
                if not isinstance(content, str):
                    raise MalformedStream("content is not a string")
                self.content.append(content)
                text += self.decoder.feed(content)
        if text:
            self.streamed.append(text)
        return text

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def shown(self) -> str:
        """The feedback streamed to the candidate from this call."""
        return "".join(self.streamed)

    def tokens(self, prompt_chars: int) -> tuple[int, int]:
        """Reported usage; an estimate when the stream broke after the model started writing."""
        if self.usage is not None:
            return self.usage
        if not self.content:
            return 0, 0
        return prompt_chars // 4, sum(len(c) for c in self.content) // 4
