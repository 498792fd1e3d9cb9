"""Command-line flags generated from a stage's pydantic config, so flags, TOML keys and defaults are one thing.

    add_options(parser, FilterConfig)            one --flag per field: --min-output-words N, --lang A,B, --exact/--no-exact
    config_from_args(FilterConfig, args, **more) the config from the flags given (others keep the model's default)

A field's flag is its name with dashes; its help is the field's description plus its default; its
type comes from the annotation (bool -> --x/--no-x, Literal -> choices, list/tuple -> a comma list the
model's own validator splits). A field can say `json_schema_extra={"cli": False}` (no flag),
`{"flag": ("-n", "--num-instructions")}` (extra spellings), `{"nargs": "+"}` (several values) or
`{"metavar": "..."}`.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ..errors import InstructgenError
from ..paths import derived


def _extra(field) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap(annotation: Any) -> Any:
    """X from X | None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def cli_fields(model: type[BaseModel], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields that get a flag: every field but those excluded or marked `cli: False`."""
    return {name: f for name, f in model.model_fields.items()
            if name not in exclude and _extra(f).get("cli", True)}


def flag_names(model: type[BaseModel], exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """field -> its long flag."""
    return {name: _flag(name) for name in cli_fields(model, exclude)}


def _default_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, model: type[BaseModel],
                exclude: tuple[str, ...] = ()) -> None:
    for name, field in cli_fields(model, exclude).items():
        extra = _extra(field)
        flags = tuple(extra.get("flag", ())) or (_flag(name),)
        if _flag(name) not in flags:
            flags = (*flags, _flag(name))
        kind = _unwrap(field.annotation)
        default = field.get_default(call_default_factory=True)
        help_text = (field.description or "").rstrip(".")
        if not field.is_required():
            help_text += f" (default: {_default_text(default)})"
        kwargs: dict[str, Any] = {"dest": name, "help": help_text.strip(), "default": argparse.SUPPRESS}
        if field.is_required():
            kwargs["required"] = True
        origin = typing.get_origin(kind)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = typing.get_args(kind)
        elif origin in (list, tuple):
            if extra.get("nargs"):
                kwargs.update(nargs=extra["nargs"], action="extend")
            kwargs["metavar"] = extra.get("metavar", "A,B")
        elif kind in (int, float):
            kwargs["type"] = kind
            kwargs["metavar"] = extra.get("metavar", "N" if kind is int else "X")
        elif kind in (str, Path):
            kwargs["metavar"] = extra.get("metavar", name.upper())
        if "choices" in extra:
            kwargs["choices"] = extra["choices"]
        if kind is bool:
            kwargs.pop("metavar", None)
        parser.add_argument(*flags, **kwargs)


def given(args: argparse.Namespace, model: type[BaseModel], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    return {name: getattr(args, name) for name in cli_fields(model, exclude) if hasattr(args, name)}


def config_from_args(model: type[BaseModel], args: argparse.Namespace, exclude: tuple[str, ...] = (),
                     **more: Any) -> Any:
    """The stage config from the flags given plus `more`; a bad value is one line naming its flag."""
    values = {**given(args, model, exclude), **more}
    try:
        return model(**values)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = _flag(name) if name in model.model_fields else (name or "options")
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise InstructgenError("; ".join(problems)) from None


def plan_rejects_and_stats(plan, args) -> tuple[str, str | None]:
    """The output (-o), rejects and stats paths a record command writes, registered with `plan` (a
    paths.CommandPaths that already holds the inputs): (rejects, stats; None when writing to stdout)."""

    plan.write(args.output, "-o")
    rejects = plan.write(args.rejects, "--rejects") if args.rejects else \
        plan.write(derived(args.output, "rejects.jsonl"), "the default rejects file", chosen=False)
    if args.stats:
        return rejects, plan.write(args.stats, "--stats")
    return rejects, None if args.output == "-" else plan.write(derived(args.output, "stats.json"),
                                                               "the default stats file", chosen=False)

