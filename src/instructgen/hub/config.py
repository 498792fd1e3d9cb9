"""The settings of the two Hub stages, one pydantic model each.

    PublishConfig     `instructgen push`'s flags, the pipeline's [publish] section (plus enabled/dry_run there),
                      and the argument of hub.push / hub.write_hub_folder
    DownloadOptions   `instructgen download`'s flags and the argument of hub.download

Only pydantic is imported here, so `instructgen push --help` stays fast.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

REPO_PATTERN = r"^[\w.-]+/[\w.-]+$"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return tuple(p.strip() for v in value for p in str(v).split(",") if p.strip())
    return value


def _writable(fmt: str, flag: str) -> str:
    from .. import formats

    if fmt not in formats.names():
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(formats.names(writable_only=True))}")
    if not formats.get(fmt).writable:
        raise ValueError(f"{fmt} can be read but not written; pass {flag} with one of "
                         f"{', '.join(formats.names(writable_only=True))}")
    return fmt


class PublishConfig(BaseModel):
    """What `push` publishes and how: the repo, one config per format, and what the card says beyond the data."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(..., pattern=REPO_PATTERN, description="the dataset repo (created if missing)",
                      json_schema_extra={"metavar": "OWNER/NAME"})
    formats: tuple[str, ...] = Field(("sharegpt",), min_length=1, description="output formats, one Hub config each",
                                     json_schema_extra={"metavar": "F1,F2"})
    config_name: str | None = Field(None, description="config name instead of the format's (a prefix NAME-FORMAT "
                                    "with several formats)", json_schema_extra={"metavar": "NAME"})
    split: str = Field("train", pattern=r"^\w+$", description="split name")
    private: bool = Field(False, description="create the repo private")
    create_pr: bool = Field(False, description="open a pull request instead of committing to main")
    token_env: str = Field("HF_TOKEN", description="environment variable with the token",
                           json_schema_extra={"metavar": "VAR"})
    license: str | None = Field(None, description="licence id for the card; when unset, the one in --stats, "
                                "else 'unknown'")
    languages: tuple[str, ...] = Field((), description="language codes for the card; when unset, guessed from "
                                       "the script of the text", json_schema_extra={"cli": False})
    pretty_name: str | None = Field(None, description="title of the card; when unset, the repo name")
    tags: tuple[str, ...] = Field((), description="extra card tags", json_schema_extra={"cli": False})
    message: str | None = Field(None, description="commit message")
    shard_rows: int = Field(100_000, ge=1, description="rows per Parquet shard")

    @field_validator("formats", "languages", "tags", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_writable(f, "--formats") for f in dict.fromkeys(value))

    @field_validator("config_name")
    @classmethod
    def _config_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.-]+", value):
            raise ValueError(f"{value!r} is not a config name (letters, digits, '_', '-', '.')")
        return value

    def config_names(self) -> dict[str, str]:
        """Output format -> Hub config name: the format's name, or config_name (a prefix with several formats)."""
        return config_names(self.formats, self.config_name)


def config_names(formats: tuple[str, ...] | list[str], config_name: str | None) -> dict[str, str]:
    if not config_name:
        return {f: f for f in formats}
    if len(formats) == 1:
        return {formats[0]: config_name}
    return {f: f"{config_name}-{f}" for f in formats}


class DownloadOptions(BaseModel):
    """Which data of a Hub repo `download` reads, into which format, and how much it accepts."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(None, description="branch, tag, PR ref (refs/pr/N) or commit SHA; when unset, main")
    to_format: str | None = Field(None, description="output format; when unset, the source's",
                                  json_schema_extra={"flag": ("--to",), "metavar": "FORMAT"})
    from_format: str | None = Field(None, description="format of the files; when unset, the registry's, else detected",
                                    json_schema_extra={"flag": ("--from",), "metavar": "FORMAT"})
    columns: dict[str, str] | None = Field(None, description="column mapping FIELD=COLUMN,... for files whose "
                                           "columns have other names", json_schema_extra={"metavar": "F=C,..."})
    config: str | None = Field(None, description="config of the repo; when unset, the registry's or the card's default")
    split: str | None = Field(None, description="split; when unset, the registry's, else train")
    token_env: str = Field("HF_TOKEN", description="environment variable with a token, for private or gated repos",
                           json_schema_extra={"metavar": "VAR"})
    max_bytes: ByteSize = Field(ByteSize(20_000_000_000), gt=0, description="refuse a download whose data, "
                                "decompressed, is larger (e.g. 500MB, 50GB)", json_schema_extra={"metavar": "SIZE"})
    max_records: int = Field(20_000_000, gt=0, description="refuse a download with more records")

    @field_validator("to_format")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else _writable(value, "--to")

    @field_validator("from_format")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        from .. import formats

        if value is not None and value not in formats.names():
            raise ValueError(f"unknown format {value!r}; choose from {', '.join(formats.names())}")
        return value

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            from ..convert import parse_columns
            from ..errors import InstructgenError

            try:
                return parse_columns(value)
            except InstructgenError as e:
                raise ValueError(str(e).removeprefix("--columns: ")) from None
        return value
