"""The JSON Schema of each format (schemas/<format>.schema.json), and row validation against it."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Iterator


@cache
def load(name: str) -> dict[str, Any]:
    path = resources.files("instructgen_schemas") / f"{name}.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _validator(name: str):
    from jsonschema import Draft202012Validator

    schema = load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(name: str, row: Any) -> Iterator[tuple[str, str]]:
    """(JSON path, message) for each way `row` breaks the schema of format `name`."""
    for e in sorted(_validator(name).iter_errors(row), key=lambda e: list(e.absolute_path)):
        yield e.json_path, e.message
