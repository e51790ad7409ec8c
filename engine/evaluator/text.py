"""Answer text as the grader sees it: normalised, split into sentences and clauses, stemmed.

Russian and English words are stemmed with Snowball (pure Python, no data to download);
complexities such as `O(n log n)`, "n log n" or "linear time" become one token (`o(nlogn)`,
`o(n)`) so that every way of writing them compares equal. Stems are cached per word: the first
sight of a word costs tens of microseconds, every later one a dictionary lookup.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

import snowballstemmer

_RU = snowballstemmer.stemmer("russian")
_EN = snowballstemmer.stemmer("english")
_STEMS: dict[str, str] = {}
_STEM_CACHE_LIMIT = 200_000
MIN_STEM_LEN = 4
MAX_HEAD = 16  # longest word beginning a prefix phrase can ask for

_CYRILLIC = re.compile("[а-я]")
_SPACES = re.compile(r"\s+")
_FANCY_QUOTE = re.compile("[«»“”„’‘]")
_QUOTES = str.maketrans({"«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "’": "'", "‘": "'"})
_NOT = re.compile(r"n['’]t\b")

# Complexity notation: the inside of O(...) without spaces, powers and log spellings unified.
_BIGO = re.compile(
    r"(?<![a-zа-я0-9_])[oо]\s*\(\s*([^()]{0,24}?(?:\([^()]{0,12}\)[^()]{0,12}?)?)\s*\)"
)
_BARE = [
    (re.compile(r"(?<![\w(])n\s*[*·⋅]?\s*log\s*\(?\s*[n2]?\s*\)?\s*n?\b(?!\))"), " o(nlogn) "),
    (re.compile(r"(?<![\w(])(?:log\s*\(\s*n\s*\)|log\s*n|logn|lg\s*n|log2\s*n)\b"), " o(logn) "),
    (re.compile(r"(?<![\w(])n\s*(?:\^\s*2|²|\*\s*n)(?![\w])"), " o(n2) "),
    (
        re.compile(
            r"\bconstant[- ]time\b|\bin constant time\b|\bконстантн\w* (?:врем\w*|сложност\w*)"
            r"|\bза константу\b|\bза o\(1\)"
        ),
        " o(1) ",
    ),
    (
        re.compile(
            r"\blinear[- ]time\b|\blinear complexity\b|\bлинейн\w* (?:врем\w*|сложност\w*)"
            r"|\bза линейное\b"
        ),
        " o(n) ",
    ),
    (
        re.compile(
            r"\blogarithmic(?: time| complexity)?\b|\bлогарифмическ\w*(?: (?:врем\w*|"
            r"сложност\w*))?|\bза логарифм\w*"
        ),
        " o(logn) ",
    ),
    (
        re.compile(
            r"\bquadratic(?: time| complexity)?\b|\bквадратичн\w*(?: (?:врем\w*|"
            r"сложност\w*))?|\bза квадрат\b"
        ),
        " o(n2) ",
    ),
]
_TOKEN = re.compile(r"o\([a-z0-9+/]*\)|==|!=|[a-zа-я0-9_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=[.!?])(?=[A-ZА-Я])")
_CLAUSE_BREAK = re.compile(r",|\bно\b|\bа\b|\bbut\b|\bwhereas\b|\bwhile\b|\bhowever\b|\bзато\b")

STOP = frozenset(
    "a an the is are was were be been being of to in on at for by with as it its this that these "
    "those and or so do does did has have had can will would should could just also very there "
    "their they them we you i my me our your which who what when how then than such into from "
    "about if because up out its it's"
    " и в во на с со к ко о об от до по за из у же ли бы это этот эта эти то та те тот как так "
    "что чтобы или либо для при он она оно они его ее их мы вы я ты там тут вот был была было "
    "были есть будет является являются есть просто тоже еще уже".split()
)
NEGATIONS = frozenset(
    "не нет ни никогда нельзя без вместо not no never cannot without instead neither nor none "
    "rather".split()
)
_VERB_WORDS = frozenset(
    "is are was were be been has have had does do did can could will would should must may "
    "might means mean uses use used make makes made gives give takes take returns return keeps "
    "stores store works work runs run checks check need needs allows allow lets holds hold waits "
    "wait blocks block creates create calls call goes go gets get puts put sends send reads read "
    "writes write becomes happens depends guarantees guarantee lose loses lost moves move finds "
    "find compares compare splits split requires require helps help knows see sees "
    "это есть будет является можно нужно нельзя надо должен должна должны значит".split()
)
_RU_VERB = re.compile(
    r"(?:ет|ют|ит|ят|ут|ется|ются|ится|ятся|ал|ала|ало|али|ил|ила|ило|или|ел|ела|ели|ать|ять|"
    r"ить|еть|уть|ться|ешь|ишь|ем|им)$"
)


def _lower(text: str) -> str:
    """Lower case, one kind of quote, `ё` as `е`, `хэш` as `хеш` (whitespace left as it is)."""
    text = text.lower().replace("ё", "е")
    if _FANCY_QUOTE.search(text):
        text = text.translate(_QUOTES)
    if "эш" in text:
        text = text.replace("хэш", "хеш").replace("кэш", "кеш")
    return text


def normalize(text: str) -> str:
    """Lower case, one kind of quote and dash, `ё` as `е`, whitespace collapsed."""
    text = text.lower().replace("ё", "е")
    if _FANCY_QUOTE.search(text):
        text = text.translate(_QUOTES)
    if "эш" in text:
        text = text.replace("хэш", "хеш").replace("кэш", "кеш")
    return _SPACES.sub(" ", text).strip()


def _bigo_inner(inner: str) -> str:
    s = re.sub(r"[\s*·⋅^_]", "", inner)
    s = (
        s.replace("²", "2")
        .replace("log(n)", "logn")
        .replace("log2n", "logn")
        .replace("lgn", "logn")
    )
    s = s.replace("nn", "n2") if s == "nn" else s
    return s


_MAYBE_COMPLEXITY = re.compile(
    r"log|lg|n\s*[\^²*·⋅]|constant|linear|quadratic|констант|линейн|логарифм|квадрат"
)


def canonical(text: str, complexity: bool = True) -> str:
    """The normalised text with complexity notation turned into single tokens.

    `complexity=False` says the caller already knows the text spells no complexity in words.
    """
    if "'" in text or "’" in text:
        text = _NOT.sub(" not", text)
    if "(" in text:
        text = _BIGO.sub(lambda m: f" o({_bigo_inner(m.group(1))}) ", text)
    if complexity and _MAYBE_COMPLEXITY.search(text):
        for pattern, replacement in _BARE:
            text = pattern.sub(replacement, text)
    return text


def stem(word: str) -> str:
    """The Snowball stem of one lower-case word (Russian or English by its script)."""
    found = _STEMS.get(word)
    if found is not None:
        return found
    if len(word) < MIN_STEM_LEN or not word.isalpha():
        result = word
    elif _CYRILLIC.search(word):
        result = _RU.stemWord(word)
    else:
        result = _EN.stemWord(word)
    if len(_STEMS) >= _STEM_CACHE_LIMIT:
        _STEMS.clear()
    _STEMS[word] = result
    return result


_KNOWN_HEADS: set[str] = set()
_HEADS: dict[str, frozenset[str]] = {}


def register_heads(prefixes: Iterable[str]) -> None:
    """Word beginnings some rubric asks for; words are checked against these only."""
    new = set(prefixes) - _KNOWN_HEADS
    if new:
        _KNOWN_HEADS.update(new)
        _HEADS.clear()


def heads(word: str) -> frozenset[str]:
    """The registered word beginnings that `word` starts with (cached per word)."""
    found = _HEADS.get(word)
    if found is None:
        known = _KNOWN_HEADS
        found = frozenset(
            word[:k] for k in range(2, min(len(word), MAX_HEAD) + 1) if word[:k] in known
        )
        if len(_HEADS) >= _STEM_CACHE_LIMIT:
            _HEADS.clear()
        _HEADS[word] = found
    return found


def tokens(text: str) -> list[str]:
    """The tokens of already normalised and canonical text."""
    return _TOKEN.findall(text)


_VERBISH: dict[str, bool] = {}


def is_verb_like(raw: str) -> bool:
    """A finite verb, a copula or a modal, roughly (cached per word)."""
    found = _VERBISH.get(raw)
    if found is None:
        if raw in _VERB_WORDS:
            found = True
        elif _CYRILLIC.match(raw):
            found = len(raw) > 4 and _RU_VERB.search(raw) is not None
        else:
            found = len(raw) > 4 and raw.endswith("ed")
        if len(_VERBISH) >= _STEM_CACHE_LIMIT:
            _VERBISH.clear()
        _VERBISH[raw] = found
    return found


@dataclass(slots=True)
class Sentence:
    """One sentence: its tokens with stems, clause numbers and content positions."""

    text: str
    raw: list[str] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)
    clause: list[int] = field(default_factory=list)
    cpos: list[int] = field(default_factory=list)  # position counting content words only
    index: dict[str, list[int]] = field(default_factory=dict)
    heads: frozenset[str] = frozenset()  # every beginning (2+ letters) of every word
    statement: bool = False
    listlike: bool = False

    @property
    def content_words(self) -> int:
        return self.cpos[-1] + 1 if self.cpos else 0


@dataclass(slots=True)
class Analysis:
    """An answer split for grading; built once and matched against any number of rubrics."""

    text: str
    sentences: list[Sentence]
    stems: frozenset[str]
    raws: frozenset[str]
    words: int
    prefixes: frozenset[str]  # every beginning (2+ letters) of every word, for prefix phrases


def _sentence(text: str, complexity: bool = True) -> Sentence:
    norm = canonical(_lower(text), complexity)  # whitespace is already collapsed
    breaks = [m.start() for m in _CLAUSE_BREAK.finditer(norm)]
    if breaks:
        found = [(m.group(), m.start()) for m in _TOKEN.finditer(norm)]
        raws = [raw for raw, _ in found]
        clauses = [bisect_left(breaks, at) for _, at in found]
    else:
        raws = _TOKEN.findall(norm)
        clauses = [0] * len(raws)
    sentence = Sentence(text, raws)
    sentence.clause = clauses
    stems = _STEMS
    sentence.stems = [stems.get(raw) or stem(raw) for raw in raws]
    stop = STOP
    sentence.cpos = [c - 1 if c > 0 else 0 for c in accumulate(raw not in stop for raw in raws)]
    index = sentence.index
    for i, s in enumerate(sentence.stems):
        if s in index:
            index[s].append(i)
        else:
            index[s] = [i]
    sentence.heads = frozenset().union(*map(heads, set(raws)))
    sentence.statement, sentence.listlike = _shape(norm, sentence)
    return sentence


def _bare(item: str) -> bool:
    """A list item that is only a term: a few words, no definition, no finite verb."""
    words = tokens(item)
    if len(words) > 3 or "—" in item or "–" in item or " - " in item or ":" in item.strip(" :"):
        return False
    return not any(w in _VERB_WORDS or (_CYRILLIC.match(w) and is_verb_like(w)) for w in words)


def _shape(norm: str, sentence: Sentence) -> tuple[bool, bool]:
    """(makes a statement, is a bare list of terms)."""
    content = sentence.content_words
    verb = any(is_verb_like(r) for r in sentence.raw)
    defines = "—" in norm or "–" in norm or " - " in norm or (":" in norm and content >= 3)
    statement = verb or defines or content >= 7
    if sum(norm.count(c) for c in ",;/") + norm.count(" and ") + norm.count(" и ") < 2:
        return statement, False  # fewer than three items: not a list
    items = [part for part in re.split(r"[,;/]|\band\b|\bи\b", norm) if part.strip()]
    bare = sum(1 for part in items if _bare(part))
    listlike = len(items) >= 3 and bare >= 0.75 * len(items)
    return statement and not listlike, listlike


def analyse(text: str) -> Analysis:
    """Split an answer into sentences of stemmed tokens (code lines count as sentences too)."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n")]
    original = "\n".join(line for line in lines if line)
    parts = [p.strip() for p in _SENTENCE_END.split(original) if p and p.strip()]
    complexity = _MAYBE_COMPLEXITY.search(original.lower()) is not None
    sentences = [_sentence(p, complexity) for p in parts]
    sentences = [s for s in sentences if s.raw]
    stems = frozenset(s for sentence in sentences for s in sentence.stems)
    raws = frozenset(r for sentence in sentences for r in sentence.raw)
    words = sum(len(s.raw) for s in sentences)
    prefixes = frozenset().union(*(s.heads for s in sentences))
    return Analysis(text, sentences, stems, raws, words, prefixes)
