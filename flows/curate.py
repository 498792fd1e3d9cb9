"""The curate flow: sources -> canonical records -> quality filter -> exact + near dedup -> each output format.

Tasks are coarse: one per shard of `pipeline.shard_size` rows for parsing,
filtering and MinHash signatures (these run on the flow's task runner:
threads, processes, Dask or Ray), then one clustering task over all
signatures in record order, so the duplicates found do not depend on how the
signatures were sharded, and one writing task per format.

Output folder:
    data/<format>.jsonl        the curated records, one file per requested format
    rejects/<stage>.jsonl      every dropped record with stage, kind, reason, origin, raw
    clusters.jsonl             each removed duplicate -> the record it duplicates, with the similarity
"""

from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from instructgen.io import write_rows
from instructgen.pipeline_config import PipelineConfig
from instructgen.record import Conversation
from instructgen.runlog import RunLog
from instructgen_flows import shards as S

# shard data is big and used once: neither hashed for a cache key nor persisted
SHARD_TASK = dict(cache_policy=NO_CACHE, persist_result=False)


@dataclass
class CurateResult:
    logs: list[RunLog]  # read, filter, dedup, write:<format>, in pipeline order
    records: list[Conversation]  # what was written
    outputs: dict[str, str]  # format -> file
    cluster_sizes: list[int] = field(default_factory=list)


@task(name="parse", task_run_name="parse {shard.label}", **SHARD_TASK)
def parse_task(shard: S.RowShard) -> S.Shard:
    return S.parse_shard(shard)


@task(name="filter", task_run_name="filter {shard.label}", **SHARD_TASK)
def filter_task(shard: S.Shard, options: dict) -> S.Shard:
    return S.filter_shard(shard, options)


@task(name="signatures", task_run_name="signatures {shard.label}", **SHARD_TASK)
def signature_task(shard: S.Shard, options: dict) -> S.Signatures:
    return S.sign_shard(shard, options)


@task(name="reference", task_run_name="reference {path}", **SHARD_TASK)
def reference_task(path: str, options: dict) -> S.Signatures:
    return S.sign_reference(path, options)


@task(name="cluster", **SHARD_TASK)
def cluster_task(signatures: list[S.Signatures], references: list[S.Signatures], options: dict
                 ) -> tuple[list[S.Duplicate], dict]:
    return S.find_duplicates(signatures, references, options)


@task(name="write", task_run_name="write {fmt}", **SHARD_TASK)
def write_task(records: list[Conversation], fmt: str, path: str) -> RunLog:
    return S.write_format(records, fmt, path)


@flow(name="curate", log_prints=True)
def curate_flow(config: PipelineConfig, output_dir: str, extra_sources: list[str] | None = None) -> CurateResult:
    out = Path(output_dir)
    cfg = config
    paths = [(str(s.path), s.format, s.columns) for s in cfg.sources if s.path is not None]
    paths += [(p, None, None) for p in extra_sources or []]

    parsed = [parse_task.submit(rs) for path, fmt, cols in paths
              for rs in S.row_shards(path, fmt, cols, cfg.pipeline.shard_size)]
    filter_opts = S.filter_options(cfg.filter) if cfg.filter.enabled else None
    dedup_opts = S.dedup_options(cfg.dedup) if cfg.dedup.enabled else None
    filtered = [filter_task.submit(f, filter_opts) for f in parsed] if filter_opts else parsed
    signed = [signature_task.submit(f, dedup_opts) for f in filtered] if dedup_opts else []
    refs = [reference_task.submit(str(p), dedup_opts) for p in cfg.dedup.against] if dedup_opts else []

    logs = [S.merge_logs("read", [f.result().log for f in parsed], out / "rejects" / "read.jsonl")]
    shards = [f.result() for f in filtered]
    if filter_opts:
        logs.append(S.merge_logs("filter", [s.log for s in shards], out / "rejects" / "filter.jsonl"))
    records = [r for s in shards for r in s.records]
    del shards, parsed, filtered

    cluster_sizes: list[int] = []
    if dedup_opts:
        dups, info = cluster_task(signed, refs, dedup_opts)
        records, dedup_log, clusters = S.apply_duplicates(records, dups, out / "rejects" / "dedup.jsonl")
        dedup_log.info["dedup"] = info
        write_rows(out / "clusters.jsonl", clusters)
        cluster_sizes = S.cluster_sizes(dups)
        logs.append(dedup_log)

    outputs = {fmt: str(out / "data" / f"{fmt}.jsonl") for fmt in cfg.pipeline.formats}
    writes = {fmt: write_task.submit(records, fmt, path) for fmt, path in outputs.items()}
    for fmt, fut in writes.items():
        logs.append(S.merge_logs(f"write:{fmt}", [fut.result()], out / "rejects" / f"write-{fmt}.jsonl"))
    for log in logs:
        print(log.equation())
    return CurateResult(logs, records, outputs, cluster_sizes)
