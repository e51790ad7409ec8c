"""Which language an answer's prose is in, with code set aside first.

A line is code only when it looks like code as a whole (a statement, an assignment, a call, a
SQL clause, a line of braces), not because it holds a semicolon or a bracket: "Стек — LIFO;
очередь — FIFO" is prose. The check flags clear cases only: a Russian answer full of English
terms (list, HashMap, Big-O) or a code-only answer is not in another language.
"""

from __future__ import annotations

import re

MIN_LETTERS = 30

_FENCED = re.compile(r"```.*?(?:```|$)", re.S)
_INLINE = re.compile(r"`[^`\n]*`")
_CODE_LINE = re.compile(
    r"^\s*(?:"
    r"(?:def|class|import|from\s+\S+\s+import|return|elif|else:|try:|except\b|finally:|"
    r"with\s+\S.*:|for\s+\w+\s+in\s+.*:|while\s+.*:|if\s+.*:|async\s+def|await\s|raise\s|"
    r"@\w+|#include|public\s|private\s|func\s|fn\s|let\s|const\s|var\s)"
    r"|(?:select|insert\s+into|update\s+\w+\s+set|delete\s+from|create\s+(?:table|index)|"
    r"alter\s+table)\b.*"
    r"|[\w.\[\]'\"]+\s*(?:[-+*/]?=|:=)\s*\S.*"
    r"|[\w.]+\(.*\)\s*;?"
    r"|[{}()\[\];]+"
    r")\s*$",
    re.I,
)
# Words that English prose is made of and code rarely is.
_ENGLISH = frozenset(
    "the a an of to is are was were be that this these those with which because it its you your "
    "we our they their there has have will would should can could when what how and or for in "
    "on not".split()
)
_WORD = re.compile(r"[^\W\d_]+")
_LETTER = re.compile(r"[^\W\d_]")
_CYRILLIC = re.compile("[\u0400-\u04ff]")


def prose(answer: str) -> str:
    """The answer without fenced code, inline code and lines that are code as a whole."""
    text = _INLINE.sub(" ", _FENCED.sub(" ", answer))
    return "\n".join(line for line in text.splitlines() if not _CODE_LINE.match(line))


def is_off_language(answer: str, language: str) -> bool:
    """True only when the answer's prose is clearly not in the interview's language."""
    text = prose(answer)
    letters = len(_LETTER.findall(text))
    if letters < MIN_LETTERS:
        return False
    cyrillic = len(_CYRILLIC.findall(text))
    if language == "en":
        return cyrillic / letters > 0.5
    if language == "ru":
        words = {w.lower() for w in _WORD.findall(text)}
        return cyrillic / letters < 0.05 and len(words & _ENGLISH) >= 2
    return False
