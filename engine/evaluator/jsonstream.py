"""Pull one string field's text out of a JSON object while the object is still being written.

The model writes `{"feedback": "...", "correctness": 7, ...}` a few characters at a time; the
feedback must reach the candidate as it is written, long before the object is complete and can be
parsed. `FieldStream.feed` takes each new piece and returns the newly decoded characters of the
top-level field, handling escapes and `\\uXXXX` surrogate pairs split anywhere across pieces. It
does not validate: the whole object is parsed and validated once it is complete.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r'["\\]')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_REPLACEMENT = "\ufffd"


class FieldStream:
    """Incrementally decodes the string value of `field` in a top-level JSON object."""

    def __init__(self, field: str) -> None:
        self._field = field
        self._depth = 0
        self._expect_key = False
        self._last_key: str | None = None
        self._in_string = False
        self._is_key = False
        self._capture = False
        self._key: list[str] = []
        self._escape: str | None = None  # "" right after a backslash, then "u" + hex digits
        self._high: int | None = None  # a high surrogate waiting for its low half
        self.done = False

    def feed(self, piece: str) -> str:
        """The field's characters decoded from `piece` (empty when it holds none)."""
        out: list[str] = []
        i, end = 0, len(piece)
        while i < end:
            if self._in_string:
                if self._escape is not None:
                    i = self._feed_escape(piece, i, out)
                    continue
                found = _SPECIAL.search(piece, i)
                stop = found.start() if found else end
                if stop > i:
                    self._put(piece[i:stop], out)
                    i = stop
                    continue
                if piece[i] == "\\":
                    self._escape = ""
                else:
                    self._end_string(out)
                i += 1
                continue
            ch = piece[i]
            i += 1
            if ch == '"':
                self._start_string()
            elif ch == "{" or ch == "[":
                self._depth += 1
                self._expect_key = self._depth == 1 and ch == "{"
            elif ch == "}" or ch == "]":
                self._depth -= 1
            elif self._depth == 1 and ch == ",":
                self._expect_key = True
                self._last_key = None
            elif self._depth == 1 and ch == ":":
                self._expect_key = False
        return "".join(out)

    def _start_string(self) -> None:
        self._in_string = True
        at_top = self._depth == 1
        self._is_key = at_top and self._expect_key
        self._capture = (
            at_top and not self._expect_key and self._last_key == self._field and not self.done
        )

    def _end_string(self, out: list[str]) -> None:
        self._flush_high(out)
        if self._is_key:
            self._last_key = "".join(self._key)
            self._key.clear()
        if self._capture:
            self.done = True
        self._in_string = self._is_key = self._capture = False

    def _feed_escape(self, piece: str, i: int, out: list[str]) -> int:
        if self._escape == "":
            ch = piece[i]
            if ch == "u":
                self._escape = "u"
            else:
                self._escape = None
                # An unknown escape is invalid JSON; validation rejects it later.
                self._put(_ESCAPES.get(ch, ch), out)
            return i + 1
        assert self._escape is not None
        take = piece[i : i + 5 - len(self._escape)]
        self._escape += take
        if len(self._escape) == 5:
            digits, self._escape = self._escape[1:], None
            try:
                self._put_code(int(digits, 16), out)
            except ValueError:
                self._put(_REPLACEMENT, out)
        return i + len(take)

    def _put_code(self, code: int, out: list[str]) -> None:
        if 0xD800 <= code <= 0xDBFF:
            self._flush_high(out)
            self._high = code
        elif 0xDC00 <= code <= 0xDFFF:
            if self._high is None:
                self._put(_REPLACEMENT, out)
            else:
                pair = 0x10000 + ((self._high - 0xD800) << 10) + (code - 0xDC00)
                self._high = None
                self._put(chr(pair), out)
        else:
            self._put(chr(code), out)

    def _flush_high(self, out: list[str]) -> None:
        if self._high is not None:
            self._high = None
            self._put(_REPLACEMENT, out)

    def _put(self, text: str, out: list[str]) -> None:
        if self._high is not None:
            self._high = None
            text = _REPLACEMENT + text
        if self._capture:
            out.append(text)
        elif self._is_key:
            self._key.append(text)
