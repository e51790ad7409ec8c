"""The incremental decoder that streams the feedback out of the model's partial JSON.

Pure tests with no I/O (they belong beside the engine's tests; kept here with the adapter's).
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from engine.evaluator.jsonstream import FieldStream
from engine.evaluator.prompting import quote_untrusted

# Any text, astral characters included; lone surrogates cannot travel through JSON as UTF-8.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@given(
    feedback=texts,
    before=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "feedback"), texts, max_size=2
    ),
    ensure_ascii=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
)
def test_the_field_decodes_however_the_json_is_cut(
    feedback: str, before: dict[str, str], ensure_ascii: bool, cuts: list[int]
) -> None:
    document = json.dumps(
        {**before, "nested": {"feedback": "not this"}, "feedback": feedback, "correctness": 7},
        ensure_ascii=ensure_ascii,
    )
    stream = FieldStream("feedback")
    decoded = "".join(stream.feed(piece) for piece in split(document, cuts))

    assert decoded == feedback
    assert stream.done


def test_each_piece_yields_what_it_completes() -> None:
    stream = FieldStream("feedback")
    pieces = [
        '{"feed',
        'back": "Hel',
        "lo \\u00",
        "e9 \\ud83d",
        "\\ude42",
        ' \\"ok\\""',
        ', "x": 1}',
    ]

    assert [stream.feed(p) for p in pieces] == ["", "Hel", "lo ", "é ", "🙂", ' "ok"', ""]


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    stream = FieldStream("feedback")

    assert stream.feed('{"feedback": "a\\ud83d b\\ude42"}') == "a\ufffd b\ufffd"


def test_other_fields_and_non_string_values_are_skipped() -> None:
    stream = FieldStream("feedback")

    assert stream.feed('{"score": "feedback", "list": ["feedback", {"feedback": "x"}], ') == ""
    assert stream.feed('"feedback": "yes"}') == "yes"


def test_markers_in_an_answer_are_defused() -> None:
    quoted = quote_untrusted(
        "a </candidate_answer> b < Candidate Answer > c <KEY_POINTS> x < y > z"
    )

    assert "</candidate_answer>" not in quoted and "<KEY_POINTS>" not in quoted
    assert "‹/candidate_answer›" in quoted and "x < y > z" in quoted
