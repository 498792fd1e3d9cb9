"""What a run tells afterwards: stats.json, the report's inputs, and what the dataset card says about the build.

Nothing published names a local path: local sources are named relative to the config's folder (or by
file name when outside it) with their sha256; published ones by dataset id and revision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..hub.card import CardInfo, SourceInfo, file_sha256, public_value
from ..hub.card import public_name as card_public_name
from ..io import write_text_atomic
from ..record import Conversation
from ..report import Profile
from ..runlog import RunLog
from .config import PipelineConfig
from .layout import OutputLayout

if TYPE_CHECKING:
    from . import RunSummary

PROFILE_SAMPLE = 20_000  # records the report's language mix and lengths are computed on


def public_stage(stage: dict[str, Any], layout: OutputLayout) -> dict[str, Any]:
    """A stage's counts with its rejects file named where it will be after the run."""
    if stage.get("rejects_file"):
        stage = {**stage, "rejects_file": layout.public(stage["rejects_file"])}
    return stage


def config_name(config: PipelineConfig) -> str:
    return config.config_path.name if config.config_path else "(bundled example)"


def public_name(path: Path, config: PipelineConfig) -> str:
    """A local file as a card may name it: relative to the config's folder, else its file name."""
    return card_public_name(path, config.config_path.resolve().parent if config.config_path else None)


def local_sources(config: PipelineConfig) -> list[dict[str, Any]]:
    """Every local file read (a folder source: each of its files), by public name and sha256."""
    from ..inputs import expand_inputs

    return [{"path": public_name(Path(path), config), "sha256": file_sha256(path),
             **({"format": s.format} if s.format else {})}
            for s in config.sources if s.path is not None for path in expand_inputs([str(s.path)], s.glob)]


def card_info(config: PipelineConfig, stages: list[dict[str, Any]], published: list[dict[str, Any]],
              generation: dict[str, Any] | None) -> CardInfo:
    """What the dataset card describes beyond the data: sources, settings, counts (no local path, no secret)."""
    local = [SourceInfo(s["path"], sha256=s["sha256"]) for s in local_sources(config)]
    remote = [SourceInfo.dataset(p["repo"], p.get("revision"), license=p.get("license"), records=p.get("records"))
              for p in published]
    dedup = None
    if config.dedup.enabled:
        dedup = {**config.dedup.model_dump(mode="json", exclude={"enabled"}),
                 "against": [public_name(Path(p), config) for p in config.dedup.against]}
    return CardInfo(
        sources=tuple(local + remote),
        stages=tuple({k: v for k, v in s.items() if k != "rejects_file"} for s in stages),
        generation=public_value({k: v for k, v in generation.items() if k != "failures_file"}) if generation else None,
        filters=public_value(config.filter.model_dump(mode="json", exclude={"enabled"})) if config.filter.enabled
        else None,
        dedup=public_value(dedup) if dedup is not None else None,
    )


def examples(logs: list[RunLog]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for log in logs:
        for reason, entries in log.examples.items():
            out.setdefault(f"{log.stage}: {reason}", entries)
    return out


def profile_records(records: list[Conversation], sample: int = PROFILE_SAMPLE) -> Profile:
    """Language (the curate stage's detector) and lengths (its units) of an evenly spaced sample of records."""
    sampler = ProfileSampler(len(records), sample)
    for conv in records:
        sampler.observe(conv)
    return sampler.finish()


class ProfileSampler:
    """The report's profile of an evenly spaced sample of `total` records (every step-th: records 0, step,
    2 step, ...), taken as the records stream past. Lengths are measured on the spot; languages are
    detected in batches, by a child process when the sample is big enough to be worth one, so that
    detecting them (langdetect: up to ~15 ms a text) overlaps the pass instead of following it."""

    def __init__(self, total: int, sample: int = PROFILE_SAMPLE):
        from .languages import LanguageWorker

        self.step = max(1, -(-total // sample))
        self.profile = Profile(total=total)
        self.seen = 0
        self.lengths: list[tuple[int, int]] = []
        self.texts: list[str] = []
        self.languages: list[str] = []  # detected here, when there is no worker
        wanted = -(-total // self.step) if total else 0
        # the pass itself takes one core; the others may detect
        n = min(-(-wanted // PROFILE_WORKER_MIN), max(1, (os.cpu_count() or 1) - 1), 4)
        self.workers = [LanguageWorker() for _ in range(n)] if wanted >= PROFILE_WORKER_MIN else []
        self.batches = 0

    def wants_next(self) -> bool:
        """Whether the next record is one of the sample (else `skip()` it: it need not be made)."""
        return self.seen % self.step == 0

    def skip(self) -> None:
        self.seen += 1

    def observe(self, conv: Conversation) -> None:
        if self.seen % self.step == 0:
            from ..curate.rules import text_length

            instruction, output = _instruction_output(conv)
            self.lengths.append((text_length(instruction)[0], text_length(output)[0]))
            self.texts.append(instruction + "\n" + output)
            if len(self.texts) == PROFILE_BATCH:
                self._detect()
        self.seen += 1

    def _detect(self) -> None:
        from .languages import detect_languages

        if self.texts:
            if self.workers:
                self.workers[self.batches % len(self.workers)].submit(self.texts)
            else:
                self.languages += detect_languages(self.texts)
            self.batches += 1
        self.texts = []

    def finish(self) -> Profile:
        self._detect()
        if self.workers:  # batch b went to worker b % n: take the batches back in that order
            answers = [w.finish_batches() for w in self.workers]
            n = len(answers)
            self.languages = [lang for b in range(self.batches) for lang in answers[b % n][b // n]]
        self.profile.rows = [(lang, i, o) for lang, (i, o) in zip(self.languages, self.lengths)]
        return self.profile

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


PROFILE_BATCH = 500
PROFILE_WORKER_MIN = 2_000  # sampled records from which a detector process pays for its start (~1 s)


def _instruction_output(conv: Conversation) -> tuple[str, str]:
    users = [m.content for m in conv.messages if m.role == "user"]
    answers = [m.content for m in conv.messages if m.role == "assistant"]
    return (users[0] if users else ""), (answers[-1] if answers else "")


def write_stats(layout: OutputLayout, config: PipelineConfig, result: "RunSummary", runner: str) -> None:
    doc: dict[str, Any] = {"stages": result.stages, "pipeline": config.pipeline.name, "runner": runner,
                           "outputs": result.outputs, "balanced": result.balanced,
                           "sources": local_sources(config) + result.sources}
    if result.generation:
        doc["generation"] = result.generation
    if result.hub:
        doc["hub"] = result.hub
    write_text_atomic(layout.stats, orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")

