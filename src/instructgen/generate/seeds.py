"""Seed tasks: Self-Instruct seed files ({instruction, instances, is_classification}) or any format convert reads."""

from __future__ import annotations

import os

from ..errors import InstructgenError
from ..io import read_rows
from ..runlog import RunLog
from .self_instruct import SeedTask

GENERATION_ROUND = "generation_round"  # meta key of a record a growing pipeline's round generated


def load_seed_tasks(paths: list[str | os.PathLike]) -> list[SeedTask]:
    seeds: list[SeedTask] = []
    for path in map(str, paths):
        first = next((r for r in read_rows(path) if r.error is None), None)
        if first is not None and isinstance(first.data, dict) and "instances" in first.data:
            seeds.extend(_self_instruct_seeds(path))
        else:
            seeds.extend(_seeds_via_convert(path))
    if not seeds:
        raise InstructgenError(f"no seed task in {', '.join(map(str, paths)) or 'no file'}; give --seed-tasks FILE")
    return seeds


def _self_instruct_seeds(path: str) -> list[SeedTask]:
    out = []
    for row in read_rows(path):
        if row.error is not None:
            raise InstructgenError(f"{row.origin}: {row.error}")
        d = row.data
        ok = isinstance(d, dict) and isinstance(d.get("instruction"), str) and isinstance(d.get("instances"), list)
        if not ok or not all(isinstance(i, dict) and isinstance(i.get("output"), str) for i in d["instances"]):
            raise InstructgenError(f"{row.origin}: not a Self-Instruct seed task (needs instruction and "
                                   "instances: [{input, output}])")
        instances = [(str(i.get("input") or ""), i["output"]) for i in d["instances"]]
        out.append(SeedTask(d["instruction"].strip(), instances, bool(d.get("is_classification")), str(d.get("id", ""))))
    return out


def _seeds_via_convert(path: str) -> list[SeedTask]:
    """Seed tasks from any format convert reads; like the native loader, a bad row is an error naming it."""
    from ..convert import ReadOptions, read_records

    log = RunLog("generate-seeds")
    out = []
    for conv in read_records([path], log, ReadOptions(strict=True)):
        turns = conv.turns
        if len(turns) < 2 or turns[0].role != "user" or turns[1].role != "assistant":
            raise InstructgenError(f"{conv.origin}: a seed task needs a user turn answered by the assistant")
        split = conv.meta.get("split") or {}
        instruction = split.get("instruction", turns[0].content)
        out.append(SeedTask(instruction.strip(), [(split.get("input", ""), turns[1].content)], False, conv.origin,
                            machine=GENERATION_ROUND in conv.meta))
    return out
