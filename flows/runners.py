"""`--runner threads|processes|dask[=ADDRESS]|ray[=ADDRESS]` -> a Prefect task runner."""

from __future__ import annotations

import os
from typing import Any

from instructgen.errors import InstructgenError
from instructgen.pipeline.config import parse_runner


def make_task_runner(spec: str, *, workers: int | None = None, dask_cluster_kwargs: dict[str, Any] | None = None):
    """The task runner named by `spec`; dask/ray with an address join that cluster, without one start a local one."""
    try:
        kind, address = parse_runner(spec)
    except ValueError as e:
        raise InstructgenError(f"--runner: {e}") from None
    workers = workers or max(1, os.cpu_count() or 1)
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs=dask_cluster_kwargs or {"n_workers": workers, "threads_per_worker": 1})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise InstructgenError(
            "the ray runner needs prefect-ray, which is not installed: pip install 'instructgen[ray]'"
        ) from None
    return RayTaskRunner(address=address) if address else RayTaskRunner()


REMOTE_LOOKAHEAD = 16  # shards in flight on a cluster of unknown size (each holds its rows until it is done)


def lookahead(spec: str) -> int:
    """How many shards the pipeline hands out ahead of the one whose result it waits for: enough to keep
    every local worker busy, few enough that the rows in flight stay a small part of the memory."""
    _kind, address = parse_runner(spec)
    return REMOTE_LOOKAHEAD if address else 2 * max(1, os.cpu_count() or 1)
