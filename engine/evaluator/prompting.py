"""The prompt the model grades with, the JSON it must answer with, and how that JSON is checked.

The model gets the question's rubric (key points and misconceptions with ids) and answers with
the candidate's claims, each judged right, wrong or irrelevant with the key point or misconception
it matches, then the feedback. It gives no scores: `modelgrade.py` computes them in code, on the
local evaluator's scale.

Prompts are versioned files under `prompts/<version>/`: one system prompt per interview language
and one layout for the user message. Changing a prompt means a new version directory: the version
is part of the result cache's key, so answers graded under the old prompt are not replayed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Literal

from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.evaluator.base import EvaluationRequest, Rubric, pick

PROMPT_VERSION = "v2"
PROMPTS_DIR = Path(__file__).parent / "prompts"
LANGUAGES = {"ru": "Russian", "en": "English"}
ANSWER_TAG = "candidate_answer"
FEEDBACK_FIELD = "feedback"
MAX_CLAIMS = 24

# Properties are generated in this order: the feedback first, so that it streams at once (a list
# of claims before it would hold back the first word by seconds); the claims then record the
# judgement the feedback gives.

# Markers the answer must not be able to forge: the prompt's own blocks and the chat-template
# markers models are trained on (<system>, [INST], <|im_start|>, "### system", "System:").
_TAG_NAMES = {
    "question",
    "rubric",
    "keypoints",
    "exampleanswer",
    "candidateanswer",
    "system",
    "assistant",
    "user",
    "instructions",
    "instruction",
    "inst",
    "sys",
    "developer",
}
_TAG_LIKE = re.compile(r"<\s*/?\s*([^<>]{1,40}?)\s*/?\s*>")
_BRACKETED = re.compile(r"\[\s*/?\s*([A-Za-z_ ]{2,20}?)\s*\]")
_CHAT_TOKEN = re.compile(r"<\|([a-z_]{2,20})\|>", re.I)
_ROLE_LINE = re.compile(
    r"^(\s*)(#{1,6}\s*|)(system|assistant|developer|user|instructions?|grader|evaluator|"
    r"система|ассистент|оценщик|инструкци\w*)(\s*:|\s*$|\s)",
    re.I | re.M,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


RESPONSE_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer_judgement",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                FEEDBACK_FIELD: {"type": "string", "description": "Feedback to the candidate"},
                "claims": {
                    "type": "array",
                    "description": "The candidate's claims, each judged against the rubric",
                    "items": {
                        "type": "object",
                        "properties": {
                            "quote": {"type": "string", "description": "Verbatim excerpt"},
                            "verdict": {"type": "string", "enum": ["right", "wrong", "irrelevant"]},
                            "match": {
                                "type": "string",
                                "description": "P<n> for a key point, M<n> for a misconception, "
                                "or empty",
                            },
                            "hedged": {"type": "boolean"},
                        },
                        "required": ["quote", "verdict", "match", "hedged"],
                        "additionalProperties": False,
                    },
                },
                "off_topic": {"type": "boolean", "description": "Answers another question"},
            },
            "required": [FEEDBACK_FIELD, "claims", "off_topic"],
            "additionalProperties": False,
        },
    },
}


class ModelClaim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quote: str = Field(max_length=1000)
    verdict: Literal["right", "wrong", "irrelevant"]
    match: str = Field(pattern=r"^(?:[PMpm]\d{1,2})?$")
    hedged: bool


class ModelOutput(BaseModel):
    """What the model must return; anything else is an invalid result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback: str = Field(min_length=1, max_length=6000)
    claims: list[ModelClaim] = Field(max_length=MAX_CLAIMS)
    off_topic: bool


def parse_output(content: str) -> ModelOutput | None:
    """The validated result, or None when the model's JSON does not meet the contract."""
    try:
        output = ModelOutput.model_validate_json(content)
    except ValidationError:
        return None
    return output if output.feedback.strip() else None


@cache
def system_prompt(language: str) -> str:
    lang = language if language in LANGUAGES else "ru"
    return (PROMPTS_DIR / PROMPT_VERSION / f"{lang}.md").read_text("utf-8").strip()


@cache
def _user_template() -> Template:
    text = (PROMPTS_DIR / PROMPT_VERSION / "user.md").read_text("utf-8")
    if f"<{ANSWER_TAG}>\n$answer\n</{ANSWER_TAG}>" not in text:
        raise RuntimeError(f"prompt {PROMPT_VERSION}: user.md must quote $answer in {ANSWER_TAG}")
    return Template(text)


def quote_untrusted(text: str) -> str:
    """Neutralise anything in the answer that looks like a marker of the prompt or a chat role."""

    def tag(match: re.Match[str]) -> str:
        name = re.sub(r"[^a-z]", "", match.group(1).lower())
        if name in _TAG_NAMES:
            return "‹" + match.group(0)[1:-1] + "›"
        return match.group(0)

    def bracket(match: re.Match[str]) -> str:
        name = re.sub(r"[^a-z]", "", match.group(1).lower())
        if name in _TAG_NAMES:
            return "⟦" + match.group(0)[1:-1] + "⟧"
        return match.group(0)

    text = _CONTROL.sub("", text)
    text = _TAG_LIKE.sub(tag, text)
    text = _BRACKETED.sub(bracket, text)
    text = _CHAT_TOKEN.sub(lambda m: "‹|" + m.group(1) + "|›", text)
    text = _ROLE_LINE.sub(
        lambda m: m.group(1) + "(quoted) " + m.group(2) + m.group(3) + m.group(4), text
    )
    return text.strip()


def point_ids(rubric: Rubric) -> tuple[list[str], list[tuple[int, int]]]:
    """Ids for the prompt: P1.. per key point, M1.. per misconception as (point, index)."""
    points = [f"P{i + 1}" for i in range(len(rubric))]
    myths = [(p, m) for p, point in enumerate(rubric) for m in range(len(point.misconceptions))]
    return points, myths


def _rubric_lines(request: EvaluationRequest) -> tuple[str, str]:
    lang = "en" if request.language == "en" else "ru"
    points, myths = point_ids(request.rubric)
    key = [f"{pid}: {pick(p.text, lang)}" for pid, p in zip(points, request.rubric, strict=True)]
    wrong = [
        f"M{i + 1}: {pick(request.rubric[p].misconceptions[m].text, lang)} "
        f"(correction: {pick(request.rubric[p].misconceptions[m].correction, lang)})"
        for i, (p, m) in enumerate(myths)
    ]
    return "\n".join(key) or "-", "\n".join(wrong) or "-"


_LANGUAGE_NOTE = {
    "ru": "Note: the answer is written in English, not in the interview's language (Russian).",
    "en": "Note: the answer is written in Russian, not in the interview's language (English).",
}


def build_messages(
    request: EvaluationRequest, other_language: bool = False
) -> list[ChatCompletionMessageParam]:
    """The system prompt for the interview's language and the request laid out as data."""
    key_points, misconceptions = _rubric_lines(request)
    note = _LANGUAGE_NOTE.get(request.language, "") if other_language else ""
    user = _user_template().substitute(
        level=request.level,
        language=LANGUAGES.get(request.language, LANGUAGES["ru"]),
        language_note=note + "\n" if note else "",
        question=request.question.strip(),
        key_points=key_points,
        misconceptions=misconceptions,
        example_answer=request.example_answer.strip() or "-",
        answer=quote_untrusted(request.answer),
    )
    return [
        {"role": "system", "content": system_prompt(request.language)},
        {"role": "user", "content": user},
    ]
