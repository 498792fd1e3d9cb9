"""The pipeline config file: TOML, validated with pydantic, errors with line numbers.

A config names the sources (files, published dataset names, a generation
block), the quality filter, dedup settings, the output formats and the
publish target. Each stage's section IS that stage's config (the model its
CLI command builds its flags from) plus an `enabled` switch, so a key means
the same thing in the TOML, on the command line and in the library. Every
stage is optional (`enabled = false` or leave the section out). Relative
paths are resolved against the config file's folder, so a config and its
data travel together.

    cfg = load_config("pipeline.toml")      # PipelineConfig, or ConfigError "file:line: ..."

Errors name the file and line of the offending key: TOML is parsed with
`tomllib` and pydantic's error locations are mapped back to lines by
`_KeyLines`, a small scanner of the TOML text (tables, arrays of tables and
`key =` lines; keys inside inline tables point at the line of their parent).
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..curate.dedup import DedupConfig
from ..curate.filter import FilterConfig
from ..errors import InstructgenError
from ..generate.config import GenerateConfig
from ..hub.config import REPO_PATTERN, PublishConfig
from ..inputs import expand_inputs
from ..quality.score import ScoreConfig
from ..quality.select import SelectConfig

RUNNER_KINDS = ("threads", "processes", "dask", "ray")
DEFAULT_RUNNER = "threads"


def example_config() -> Path:
    """The bundled example config (package data: works from a wheel, in any folder)."""
    return Path(str(resources.files("instructgen_data").joinpath("pipeline.example.toml")))


class ConfigError(InstructgenError):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not silently ignored


class Source(_Section):
    """One input: a local file, or a published dataset (downloaded through the hub module)."""

    path: Path | None = Field(None, description="a file, or a folder read recursively (see `glob`)")
    glob: str | None = Field(None, description="with a folder `path`: only the files matching this pattern")
    dataset: str | None = Field(None, description="a registry name or OWNER/REPO on the Hub")
    revision: str | None = None
    format: str | None = Field(None, description="input format; detected when absent")
    columns: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Source":
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of `path` or `dataset`")
        return self

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"hub:{self.dataset}"


class Generate(GenerateConfig):
    """[generate]: the generate stage's config (`instructgen generate`'s flags) plus a switch; off unless enabled."""

    enabled: bool = False

    @model_validator(mode="after")
    def _needs_seeds(self) -> "Generate":
        if self.enabled and not self.seed_tasks:
            raise ValueError("generation is enabled: set `seed_tasks` (a seed file, e.g. seeds/seed_tasks_en.jsonl)")
        return self


class Filter(FilterConfig):
    """[filter]: the filter stage's config (`instructgen filter`'s flags) plus a switch."""

    enabled: bool = True


class Dedup(DedupConfig):
    """[dedup]: the dedup stage's config (`instructgen dedup`'s flags) plus a switch."""

    enabled: bool = True


class Score(ScoreConfig):
    """[score]: the score stage's config (`instructgen score`'s flags) plus a switch and the price table;
    off unless enabled. Judge answers are cached in OUTPUT/.cache/score (unless `cache_dir`), kept between
    runs: a scheduled rerun pays only for records it has not judged before."""

    enabled: bool = False
    prices: Path | None = Field(None, description="JSON price table in USD per 1M tokens (for max_cost): "
                                '{"MODEL" or "*": {"prompt": x, "completion": y}}')


class Select(SelectConfig):
    """[select]: the select stage's config (`instructgen select`'s flags) plus a switch; off unless enabled."""

    enabled: bool = False


class Publish(PublishConfig):
    """[publish]: the publish stage's config (`instructgen push`'s flags) plus switches; `formats` defaults to
    the pipeline's formats."""

    enabled: bool = False
    dry_run: bool = True  # write OUTPUT/hub/ (the exact Hub folder) instead of pushing
    repo: str = Field("your-name/instructgen-example", pattern=REPO_PATTERN, description="the dataset repo")


class Settings(_Section):
    name: str = "instructgen-pipeline"
    output_dir: Path | None = None
    formats: list[str] = Field(default_factory=lambda: ["alpaca"], min_length=1)
    runner: str = DEFAULT_RUNNER
    shard_size: int = Field(20_000, gt=0)
    turns: Literal["first", "last", "explode"] | None = Field(
        None, description="formats with one prompt per row (alpaca, dolly, ...): which turns of a dialogue they "
        "take; other formats ignore it (default: first)")
    report: bool = True
    progress: Literal["auto", "always", "never"] = Field(
        "auto", description="progress bars with ETA on stderr for the passes over the data (auto: when stderr is "
        "a terminal); `instructgen run --progress` overrides it")

    @field_validator("runner")
    @classmethod
    def _runner(cls, v: str) -> str:
        parse_runner(v)
        return v


class PipelineConfig(_Section):
    pipeline: Settings = Field(default_factory=Settings)
    sources: list[Source] = Field(default_factory=list)
    generate: Generate = Field(default_factory=Generate)
    filter: Filter = Field(default_factory=Filter)
    dedup: Dedup = Field(default_factory=Dedup)
    score: Score = Field(default_factory=Score)
    select: Select = Field(default_factory=Select)
    publish: Publish = Field(default_factory=Publish)
    config_path: Path | None = None  # where it was loaded from (set by load_config)

    @model_validator(mode="after")
    def _has_input(self) -> "PipelineConfig":
        if not self.sources and not self.generate.enabled:
            raise ValueError("nothing to do: add a [[sources]] entry or enable [generate]")
        if self.select.enabled and not (self.select.top_k or self.select.min is not None
                                        or self.select.budget_tokens or self.select.diverse):
            raise ValueError("[select] keeps everything: set top_k, min, budget_tokens or diverse")
        if "formats" not in self.publish.model_fields_set:
            self.publish.formats = tuple(self.pipeline.formats)
        return self

    def resolved(self, base: Path) -> "PipelineConfig":
        """A copy whose relative paths are taken from `base` (the config file's folder)."""
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (base / p)

        data = self.model_copy(deep=True)
        for s in data.sources:
            s.path = fix(s.path)
        data.generate.seed_tasks = [fix(p) for p in data.generate.seed_tasks]
        data.generate.cache_dir = fix(data.generate.cache_dir)
        data.dedup.against = [fix(p) for p in data.dedup.against]
        data.score.judge_prompt, data.score.prices = fix(data.score.judge_prompt), fix(data.score.prices)
        data.score.cache_dir = fix(data.score.cache_dir)
        data.pipeline.output_dir = fix(data.pipeline.output_dir)
        return data


def parse_runner(spec: str) -> tuple[str, str | None]:
    """'dask=tcp://host:8786' -> ('dask', 'tcp://host:8786'); 'threads' -> ('threads', None)."""
    kind, _, address = spec.partition("=")
    if kind not in RUNNER_KINDS:
        raise ValueError(f"unknown runner {kind!r}; choose threads, processes, dask[=ADDRESS] or ray[=ADDRESS]")
    if address and kind in ("threads", "processes"):
        raise ValueError(f"the {kind} runner takes no address")
    return kind, address or None


def load_config(path: str | os.PathLike | None = None) -> PipelineConfig:
    """Read and validate a pipeline config; None means the bundled example."""
    path = Path(path) if path is not None else example_config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the config file (permission denied)") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_config(text, path)


def parse_config(text: str, path: str | os.PathLike = "<config>") -> PipelineConfig:
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's messages end in "(at line L, column C)"; put the place first, like every other error
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)$", msg)
        line = m.group(1) if m else (str(text.count("\n") + 1) if msg.endswith("(at end of document)") else "")
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: invalid TOML: {msg[: m.start()].strip() if m else msg}") from None
    if not isinstance(data.get("sources", []), list):
        raise ConfigError(f"{path}:{_KeyLines(text).line(('sources',))}: `sources` must be an array of tables "
                          "([[sources]] blocks)")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        lines = _KeyLines(text)
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key (allowed: {', '.join(_allowed_keys(loc[:-1]))})"
            problems.append(f"{path}:{lines.line(loc)}: {key or 'config'}: {msg}")
        raise ConfigError("invalid pipeline config\n  " + "\n  ".join(problems)) from None
    _refuse_keys_a_download_ignores(cfg, text, path)
    cfg = cfg.resolved(path.resolve().parent)
    cfg.config_path = path
    return cfg


def _refuse_keys_a_download_ignores(cfg: "PipelineConfig", text: str, path: Path) -> None:
    """A `dataset` source is downloaded as the Hub repo's own files say (the registry's columns, or the card's)
    and handed on in one format: a `format`, `columns` or `glob` beside it would be ignored without a word."""
    for i, source in enumerate(cfg.sources):
        given = [key for key in ("format", "columns", "glob") if getattr(source, key) is not None] \
            if source.dataset is not None else []
        if given:
            keys = " and ".join(f"`{key}`" for key in given)
            line = min(_KeyLines(text).line(("sources", i, key)) for key in given)
            verb, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
            raise ConfigError(
                f"{path}:{line}: sources[{i}]: {keys} {verb} to `path` sources only, and a `dataset` source "
                f"would ignore {them}: remove {keys}, or download the set first (`instructgen download "
                f"{source.dataset} -o FILE --from FORMAT "
                "--columns F=C,...`) and give that file as `path`")


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        args = getattr(ann, "__args__", ()) or ()
        nxt = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            break
        model = nxt
    return [k for k in model.model_fields if k != "config_path"]


class _KeyLines:
    """Line numbers of keys in a TOML text, by location path (('sources', 1, 'path') -> 12)."""

    _header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str):
        self.where: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        table: tuple = ()
        for n, line in enumerate(text.splitlines(), 1):
            if m := self._header.match(line):
                name = tuple(self._parts(m.group(2)))
                if m.group(1) == "[[":
                    idx = counts.get(name, -1) + 1
                    counts[name] = idx
                    table = (*name, idx)
                else:
                    table = name
                self.where.setdefault(table, n)
            elif m := self._key.match(line):
                self.where.setdefault((*table, *self._parts(m.group(1))), n)

    @staticmethod
    def _parts(dotted: str) -> list[str]:
        return [p.strip().strip("\"'") for p in dotted.split(".")]

    def line(self, loc: tuple) -> int:
        """The line of the longest known prefix of `loc` (1 if nothing matches)."""
        loc = tuple(loc)
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.where:
                return self.where[loc[:end]]
        return 1


def input_files(cfg: PipelineConfig) -> list[tuple[tuple, Path]]:
    """Every local file the config reads, with the location of its key: ((section, index, key), path)."""
    files: list[tuple[tuple, Path]] = [(("sources", i, "path"), s.path) for i, s in enumerate(cfg.sources)
                                       if s.path is not None]
    if cfg.generate.enabled:
        files += [(("generate", "seed_tasks", i), p) for i, p in enumerate(cfg.generate.seed_tasks)]
    if cfg.dedup.enabled:
        files += [(("dedup", "against", i), p) for i, p in enumerate(cfg.dedup.against)]
    if cfg.score.enabled:
        files += [(("score", key), p) for key, p in (("judge_prompt", cfg.score.judge_prompt),
                                                     ("prices", cfg.score.prices)) if p is not None]
    return files


def check_input_files(cfg: PipelineConfig) -> None:
    """A missing, unreadable or folder input, a file of an unknown type, or a dedup reference with no record
    of a known format is one ConfigError naming its key and file:line (before any stage runs)."""
    where = cfg.config_path or Path("<config>")
    try:
        lines = _KeyLines(where.read_text(encoding="utf-8")) if cfg.config_path else None
    except OSError:
        lines = None

    def fail(loc: tuple, problem: str) -> ConfigError:
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        line = f":{lines.line(loc)}" if lines else ""
        return ConfigError(f"{where}{line}: {key}: {problem}")

    for loc, path in input_files(cfg):
        problem = None
        if not path.exists():
            problem = "no such file"
        elif path.is_dir() and loc[0] != "sources":
            problem = "is a folder; name a file"
        elif not os.access(path, os.R_OK):
            problem = "cannot be read (permission denied)"
        if problem:
            raise fail(loc, f"{path}: {problem}")
    for i, source in enumerate(cfg.sources):
        if source.path is not None and source.path.is_dir():
            try:
                expand_inputs([str(source.path)], source.glob)
            except InstructgenError as e:
                raise fail(("sources", i, "path"), str(e)) from None
        elif source.path is not None:
            _check_records(source.path, source.format, source.columns, lambda e, i=i: fail(("sources", i, "path"), e))
    if cfg.dedup.enabled:
        for i, path in enumerate(cfg.dedup.against):
            _check_records(path, None, None, lambda e, i=i: fail(("dedup", "against", i), e))


def checked_config(path: str | os.PathLike | None) -> PipelineConfig:
    """The config and every file it names, checked before any stage runs: each problem is one ConfigError line."""
    cfg = load_config(path)
    check_input_files(cfg)
    return cfg


def checked_output_folder(cfg: PipelineConfig, given: str | os.PathLike | None) -> Path:
    """The run's output folder (`given`, else the config's, else the default), checked against every input
    (an input inside it would be replaced by the run) before any stage runs."""
    from ..paths import CommandPaths
    from .layout import output_folder

    out = output_folder(given, cfg.pipeline.output_dir)
    plan = CommandPaths()
    for loc, path in input_files(cfg):
        plan.read(path, ".".join(str(p) for p in loc))
    if cfg.config_path is not None:
        plan.read(cfg.config_path, "the config")
    plan.write_folder(str(out), "the output folder")
    plan.check()
    return out


def _check_records(path: Path, fmt: str | None, columns: dict[str, str] | None, fail) -> None:
    """A file the pipeline reads: a known file type whose first rows are records of a known format (detected
    when not given), checked now rather than after the stages before it have run."""
    from ..convert import ReadOptions, open_source
    from ..io import kind_of
    from ..runlog import RunLog

    try:
        kind_of(path)
        _spec, rows = open_source(str(path), RunLog("check"), ReadOptions(from_format=fmt, columns=columns,
                                                                          announce=lambda _message: None))
        if hasattr(rows, "close"):
            rows.close()
    except InstructgenError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{path}: cannot be read ({e.strerror or e})") from None
