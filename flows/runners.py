"""`--runner threads|processes|dask[=ADDRESS]|ray[=ADDRESS]` -> a Prefect task runner."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any
from urllib.parse import urlsplit

from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

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
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
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


CONNECT_SECONDS = 10


def check_reachable(spec: str, timeout: float = CONNECT_SECONDS) -> None:
    """A cluster address of `--runner dask=ADDRESS` (or ray=HOST:PORT) that nothing answers on is one line,
    said within `timeout` seconds and before any work starts (Dask itself retries for 30 s, then fails deep
    inside the flow); a Dask address is also asked whether a Dask scheduler answers there."""
    kind, address = parse_runner(spec)
    if address is None or address == "auto":
        return
    host, port = _host_port(address)
    if host is None:
        return  # a scheme we cannot probe ahead (e.g. inproc://); the runner says what is wrong
    what = "Dask scheduler" if kind == "dask" else "Ray cluster"
    hint = ("start one there (`dask scheduler`) or drop the address to start a local cluster (--runner dask)"
            if kind == "dask" else "start one there (`ray start --head`) or drop the address (--runner ray)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise InstructgenError(f"--runner {spec}: no {what} at {address} ({reason}); {hint}") from None
    if kind == "dask":
        _ask_dask(spec, address, timeout, hint)


def _host_port(address: str) -> tuple[str | None, int | None]:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls", "ray", "ws", "wss") or not parts.hostname:
        return None, None
    try:
        port = parts.port
    except ValueError:
        raise InstructgenError(f"--runner: {address!r}: the port is not a number") from None
    default = {"ray": 10001}.get(parts.scheme, 8786)
    return parts.hostname, port or default


def _ask_dask(spec: str, address: str, timeout: float, hint: str) -> None:
    """Whatever answers at ADDRESS says who it is (Dask's `identity` call), within `timeout` seconds."""

    from distributed.comm import connect

    async def identity() -> dict:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            await comm.close()

    try:
        answer = asyncio.run(asyncio.wait_for(identity(), timeout))
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        answer = {"error": str(e).splitlines()[0] if str(e) else f"no Dask answer within {timeout:g} s"}
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        why = answer.get("error") if isinstance(answer, dict) and answer.get("error") else "not a Dask scheduler"
        raise InstructgenError(f"--runner {spec}: something answers at {address} but no Dask scheduler did "
                               f"({why}); {hint}")


REMOTE_LOOKAHEAD = 16  # shards in flight on a cluster of unknown size (each holds its rows until it is done)


def lookahead(spec: str) -> int:
    """How many shards the pipeline hands out ahead of the one whose result it waits for: enough to keep
    every local worker busy, few enough that the rows in flight stay a small part of the memory."""
    _kind, address = parse_runner(spec)
    return REMOTE_LOOKAHEAD if address else 2 * max(1, os.cpu_count() or 1)
