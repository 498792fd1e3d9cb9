"""One config per stage: the TOML section, the CLI flags and the library argument agree (names and defaults).

The CLI flags are generated from the stage's pydantic model and the TOML section is that model plus an
`enabled` switch; these tests fail as soon as one side drifts (a flag added by hand, a default changed
in one place, a section that copies fields instead of inheriting them).
"""

from __future__ import annotations

import argparse

import pytest

from instructgen.cli import build_parser
from instructgen.cli.options import cli_fields, flag_names
from instructgen.curate.dedup import DedupConfig
from instructgen.curate.filter import FilterConfig
from instructgen.generate.config import GenerateConfig
from instructgen.hub.config import PublishConfig
from instructgen.pipeline import config as pc
from instructgen.quality.score import ScoreConfig
from instructgen.quality.select import SelectConfig

# (command, the stage's config, its TOML section, keys the section adds)
STAGES = [
    ("filter", FilterConfig, pc.Filter, {"enabled"}),
    ("dedup", DedupConfig, pc.Dedup, {"enabled"}),
    ("generate", GenerateConfig, pc.Generate, {"enabled"}),
    ("push", PublishConfig, pc.Publish, {"enabled", "dry_run"}),
    ("score", ScoreConfig, pc.Score, {"enabled", "prices"}),  # prices: the command's --prices FILE
    ("select", SelectConfig, pc.Select, {"enabled"}),
]


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command,model,section,added", STAGES, ids=[s[0] for s in STAGES])
def test_every_field_is_a_flag_with_the_models_default(command, model, section, added):
    parser = subparser(command)
    by_dest = {a.dest: a for a in parser._actions}
    for name, flag in flag_names(model).items():
        action = by_dest.get(name)
        assert action is not None and flag in action.option_strings, f"{command}: no {flag} for {name}"
        default = model.model_fields[name].get_default(call_default_factory=True)
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        assert f"(default: {shown or 'none'})" in action.help or default is None or action.required, (flag, action.help)
    # and nothing else configures the stage behind the model's back
    stage_flags = {a.dest for a in parser._actions if a.option_strings} - {"help"}
    assert set(cli_fields(model)) <= stage_flags


@pytest.mark.parametrize("command,model,section,added", STAGES, ids=[s[0] for s in STAGES])
def test_the_toml_section_is_the_stage_config_plus_a_switch(command, model, section, added):
    assert issubclass(section, model)
    assert set(section.model_fields) - set(model.model_fields) == added
    for name, field in model.model_fields.items():
        if field.is_required():  # e.g. push's --repo: the section may offer a placeholder default
            continue
        assert section.model_fields[name].get_default(call_default_factory=True) == \
            field.get_default(call_default_factory=True), name


@pytest.mark.parametrize("command,model,section,added", STAGES, ids=[s[0] for s in STAGES])
def test_a_flag_and_a_toml_key_build_the_same_config(command, model, section, added, tmp_path):
    """Set every field to a non-default value through the flags and through TOML: the configs are equal."""
    values = {"filter": {"lang": "zh,en", "min_output_words": 3, "rules": "default,-language"},
              "dedup": {"threshold": 0.8, "num_perm": 64, "shingle": "char:4", "keep": "longest", "exact": False},
              "generate": {"num_instructions": 7, "mode": "self-instruct", "lang": "zh", "concurrency": 3,
                           "max_retry_after": 5.0, "model": "m"},
              "push": {"repo": "me/x", "split": "test", "private": True, "shard_rows": 5},
              "score": {"judge": "alpagasus,mt-bench", "reply_tokens": 64, "max_tokens": 5000, "concurrency": 3,
                        "model": "m"},
              "select": {"by": "deita-complexity*deita-quality", "top_k": 7, "min": 2.5, "diverse": True,
                         "similarity": 0.8, "per": "language", "drop_flags": "refusal,needs_media"}}[command]
    argv = []
    for name, value in values.items():
        flag = flag_names(model)[name]
        argv += [f"--{'no-' if value is False else ''}{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
    positional = {"generate": ["--seed-tasks", "s.jsonl", "-o", "out.jsonl"], "push": ["in.jsonl"]}.get(
        command, ["in.jsonl", "-o", "out.jsonl"])
    args = subparser(command).parse_args([*positional, *argv])
    from instructgen.cli.options import config_from_args

    from_cli = config_from_args(model, args)
    if command == "generate":
        values["seed_tasks"] = "s.jsonl"
        from_cli = from_cli.model_copy(update={"seed_tasks": [tmp_path / "s.jsonl"]})
    toml_lines = []
    for name, value in values.items():
        if isinstance(value, bool):
            toml_lines.append(f"{name} = {str(value).lower()}")
        elif isinstance(value, str):
            toml_lines.append(f'{name} = "{value}"')
        else:
            toml_lines.append(f"{name} = {value}")
    section = {"push": "publish"}.get(command, command)
    cfg = pc.parse_config(f"[{section}]\n" + "\n".join(toml_lines) + '\n[[sources]]\npath = "x.jsonl"\n',
                          tmp_path / "p.toml")
    from_toml = model(**getattr(cfg, section).model_dump(exclude=added | ({"formats"} if command == "push" else set())))
    if command == "push":
        from_cli = from_cli.model_copy(update={"formats": model.model_fields["formats"].default})
    assert from_cli == from_toml


def test_unknown_keys_are_errors_with_file_and_line(tmp_path):
    with pytest.raises(pc.ConfigError, match=r"p\.toml:4: filter\.min_output_word: unknown key \(allowed: rules"):
        pc.parse_config('[[sources]]\npath = "x.jsonl"\n[filter]\nmin_output_word = 3\n', tmp_path / "p.toml")
