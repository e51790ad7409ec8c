"""Transactional emails rendered from templates, in the user's language (ru or en)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.mail.base import MailMessage

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("ru", "en")


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _subjects() -> dict[str, dict[str, str]]:
    """Subjects per template and language, from subjects.json and any subjects.<area>.json."""
    data: dict[str, dict[str, str]] = {}
    for path in sorted(TEMPLATES.glob("subjects*.json")):
        data.update(json.loads(path.read_text("utf-8")))
    return data


def render(template: str, language: str, to_email: str, context: dict[str, Any]) -> MailMessage:
    """Render `template` in `language`; unknown variables are an error, not blank text."""
    lang = language if language in LANGUAGES else "ru"
    subjects = _subjects()
    if template not in subjects:
        raise KeyError(f"unknown mail template {template!r}")
    env = _environment()
    html = env.get_template(f"{lang}/{template}.html").render(lang=lang, **context)
    text = env.get_template(f"{lang}/{template}.txt").render(**context)
    subject = env.from_string(subjects[template][lang]).render(**context)
    return MailMessage(to_email=to_email, subject=subject, text=text, html=html, tag=template)
