"""One settings model for generation: the [generate] TOML section, the CLI's flags and the library argument."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from instructgen.cli import build_parser
from instructgen.cli.options import config_from_args
from instructgen.errors import InstructgenError
from instructgen.generate.config import ClientConfig, GenerateConfig


def _args(*argv: str):
    return build_parser().parse_args(["generate", "-o", "out.jsonl", *argv])


def test_every_field_has_a_description_and_a_flag_in_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    help_text = capsys.readouterr().out
    for name, field in GenerateConfig.model_fields.items():
        assert field.description, name
        if (field.json_schema_extra or {}).get("cli", True):
            assert "--" + name.replace("_", "-") in help_text, name
        else:  # the pipeline's own settings (grow): a TOML key, no flag of the single command
            assert name.startswith("grow") and "--" + name.replace("_", "-") not in help_text, name
    assert "-n N, --num-instructions N" in help_text and "-o OUT, --output OUT" in help_text


def test_flags_not_given_keep_the_models_defaults():
    config = config_from_args(GenerateConfig, _args("--seed-tasks", "s.jsonl"))
    assert config == GenerateConfig(seed_tasks=["s.jsonl"])
    assert config.concurrency == ClientConfig().concurrency == 16 and config.max_retry_after == 120


def test_flags_and_the_toml_section_build_the_same_config():
    given = config_from_args(GenerateConfig, _args(
        "--seed-tasks", "a.jsonl", "b.jsonl", "-n", "7", "--mode", "self-instruct", "--lang", "zh",
        "--concurrency", "3", "--max-retry-after", "5", "--timeout", "9.5", "--format", "sharegpt"))
    section = tomllib.loads("""
        [generate]
        seed_tasks = ["a.jsonl", "b.jsonl"]
        num_instructions = 7
        mode = "self-instruct"
        lang = "zh"
        concurrency = 3
        max_retry_after = 5
        timeout = 9.5
        format = "sharegpt"
    """)["generate"]
    assert given == GenerateConfig(**section)
    assert given.seed_tasks == [Path("a.jsonl"), Path("b.jsonl")]
    assert GenerateConfig(seed_tasks="one.jsonl").seed_tasks == [Path("one.jsonl")]  # a single path in TOML


def test_unknown_keys_and_bad_values_are_errors_naming_them():
    with pytest.raises(ValidationError, match="concurency"):
        GenerateConfig(concurency=4)
    with pytest.raises(InstructgenError, match="--concurrency: Input should be greater than or equal to 1"):
        config_from_args(GenerateConfig, _args("--seed-tasks", "s.jsonl", "--concurrency", "0"))
    with pytest.raises(InstructgenError, match="--format: unknown output format 'nope'"):
        config_from_args(GenerateConfig, _args("--seed-tasks", "s.jsonl", "--format", "nope"))
    with pytest.raises(SystemExit):  # argparse: --seed-tasks is required on the command line
        build_parser().parse_args(["generate", "-o", "out.jsonl"])
