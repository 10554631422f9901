"""YAML config plumbing shared by the pipeline and trainer configs: read, --set overrides, error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def read_mapping(path: Path, error: type[Exception]) -> dict[str, Any]:
    if not path.exists():
        raise error(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise error(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise error(f"config file {path} must hold a mapping at the top level")
    return data


def apply_override(data: dict[str, Any], assignment: str, error: type[Exception]) -> None:
    """`section.key=value`, the value parsed as YAML (so lists, null and numbers work)."""
    if "=" not in assignment:
        raise error(f"--set expects key.path=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise error(f"--set has an empty key in {assignment!r}")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise error(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw)


def describe(error: ValidationError, title: str) -> str:
    """One line per problem, naming the field; enumerations list their allowed values."""
    lines = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting"
        elif "input" in e and e["type"] != "value_error":
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"  {field}: {msg}")
    return f"{title}:\n" + "\n".join(lines)


def validate(model: type[BaseModel], data: dict[str, Any], title: str, error: type[Exception]):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(describe(e, title)) from None
