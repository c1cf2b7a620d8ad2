"""The JSON Schema of answers.yaml, with the profile and role names filled in."""

from __future__ import annotations

from typing import Any

from installer import __version__
from installer.answers import Answers
from installer.profile import ROLE_NAMES, available_profiles


def answers_json_schema() -> dict[str, Any]:
    schema = Answers.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"fmp-install answers.yaml (fmp-install {__version__})"
    props = schema["properties"]
    props["profile"]["enum"] = available_profiles()
    host = schema["$defs"]["Host"]["properties"]
    host["roles"]["items"] = {"type": "string", "enum": list(ROLE_NAMES)}
    return schema
