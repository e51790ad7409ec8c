"""The prompt the model grades with, the JSON it must answer with, and how that JSON is checked.

Prompts are versioned files under `prompts/<version>/`: one system prompt per interview language
and one layout for the user message. Changing a prompt means a new version directory: the version
is part of the result cache's key, so answers graded under the old prompt are not replayed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from string import Template

from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.evaluator.base import EvaluationRequest

PROMPT_VERSION = "v1"
PROMPTS_DIR = Path(__file__).parent / "prompts"
LANGUAGES = {"ru": "Russian", "en": "English"}
ANSWER_TAG = "candidate_answer"
FEEDBACK_FIELD = "feedback"

# Overall score from the dimensions, with the local evaluator's weights.
WEIGHTS = {"correctness": 0.5, "completeness": 0.3, "clarity": 0.2}

_TAG_NAMES = {"question", "keypoints", "exampleanswer", "candidateanswer"}
_TAG_LIKE = re.compile(r"<\s*/?\s*([^<>]{1,40}?)\s*/?\s*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _score_schema(description: str) -> dict[str, object]:
    return {"type": "integer", "minimum": 0, "maximum": 10, "description": description}


# Properties are generated in this order: the feedback first, so it can be streamed.
RESPONSE_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer_evaluation",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                FEEDBACK_FIELD: {"type": "string", "description": "Feedback to the candidate"},
                "correctness": _score_schema("Technical correctness, 0-10"),
                "completeness": _score_schema("Coverage of the key points, 0-10"),
                "clarity": _score_schema("Structure and clarity, 0-10"),
            },
            "required": [FEEDBACK_FIELD, "correctness", "completeness", "clarity"],
            "additionalProperties": False,
        },
    },
}


class ModelOutput(BaseModel):
    """What the model must return; anything else is an invalid result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback: str = Field(min_length=1, max_length=6000)
    correctness: float = Field(ge=0, le=10)
    completeness: float = Field(ge=0, le=10)
    clarity: float = Field(ge=0, le=10)

    @property
    def score(self) -> float:
        dims = {
            "correctness": self.correctness,
            "completeness": self.completeness,
            "clarity": self.clarity,
        }
        return round(sum(dims[name] * weight for name, weight in WEIGHTS.items()), 1)


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
    """Neutralise anything in the answer that looks like one of the prompt's markers."""

    def defuse(match: re.Match[str]) -> str:
        name = re.sub(r"[^a-z]", "", match.group(1).lower())
        if name in _TAG_NAMES:
            return "‹" + match.group(0)[1:-1] + "›"
        return match.group(0)

    return _TAG_LIKE.sub(defuse, _CONTROL.sub("", text)).strip()


def build_messages(request: EvaluationRequest) -> list[ChatCompletionMessageParam]:
    """The system prompt for the interview's language and the request laid out as data."""
    user = _user_template().substitute(
        level=request.level,
        language=LANGUAGES.get(request.language, LANGUAGES["ru"]),
        question=request.question.strip(),
        key_points="\n".join(f"- {point}" for point in request.key_points) or "-",
        example_answer=request.example_answer.strip() or "-",
        answer=quote_untrusted(request.answer),
    )
    return [
        {"role": "system", "content": system_prompt(request.language)},
        {"role": "user", "content": user},
    ]
