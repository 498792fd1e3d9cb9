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

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from instructgen.io import write_rows
from instructgen.pipeline_config import PipelineConfig
from instructgen.record import Conversation
from instructgen.runlog import RunLog
from instructgen_flows import shards as S

# shard data is big and used once: neither hashed for a cache key nor persisted
SHARD_TASK = dict(cache_policy=NO_CACHE, persist_result=False)


class CurateResult(S.Carrier):
    __slots__ = ("logs", "records", "outputs", "cluster_sizes", "sources")

    def __init__(self, logs: list[RunLog], records: list[Conversation], outputs: dict[str, str],
                 cluster_sizes: list[int], sources: list[dict]):
        self.logs = logs  # download:*, read, filter, dedup, write:<format>, in pipeline order
        self.records = records  # what was written
        self.outputs = outputs  # format -> file
        self.cluster_sizes = cluster_sizes
        self.sources = sources  # published datasets: repo, revision, license, records


@task(name="download", task_run_name="download {dataset}", cache_policy=NO_CACHE, retries=3,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5)
def download_task(dataset: str, revision: str | None, out_path: str) -> tuple[dict, RunLog]:
    """A published dataset at a pinned revision, as OpenAI-format JSONL (keeps turns, system prompts, tools)."""
    from instructgen.hub import download

    result = download(dataset, out_path, revision=revision, to_format="openai")
    result.log.stage = f"download:{dataset}"
    return ({"name": dataset, "repo": result.repo_id, "revision": result.revision, "license": result.license,
             "records": result.log.n_out, "path": out_path}, result.log)


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
def cluster_task(signatures: list[S.Signatures], references: list[S.Signatures], options: dict) -> S.Duplicates:
    return S.find_duplicates(signatures, references, options)


@task(name="write", task_run_name="write {fmt}", **SHARD_TASK)
def write_task(batch: S.Batch, fmt: str, path: str) -> RunLog:
    return S.write_format(batch.records, fmt, path)


@flow(name="curate", log_prints=True)
def curate_flow(config: PipelineConfig, output_dir: str, extra_sources: list[str] | None = None) -> CurateResult:
    out = Path(output_dir)
    cfg = config
    paths, published, downloads = [], [], []
    for i, s in enumerate(cfg.sources):
        if s.path is not None:
            paths.append((str(s.path), s.format, s.columns))
        else:
            safe = s.dataset.replace("/", "__")
            info, log = download_task(s.dataset, s.revision, str(out / "sources" / f"{i:02d}-{safe}.jsonl"))
            published.append(info)
            downloads.append(log)
            paths.append((info["path"], "openai", None))
    paths += [(p, None, None) for p in extra_sources or []]

    parsed = [parse_task.submit(rs) for path, fmt, cols in paths
              for rs in S.row_shards(path, fmt, cols, cfg.pipeline.shard_size)]
    filter_opts = S.filter_options(cfg.filter) if cfg.filter.enabled else None
    dedup_opts = S.dedup_options(cfg.dedup) if cfg.dedup.enabled else None
    filtered = [filter_task.submit(f, filter_opts) for f in parsed] if filter_opts else parsed
    signed = [signature_task.submit(f, dedup_opts) for f in filtered] if dedup_opts else []
    refs = [reference_task.submit(str(p), dedup_opts) for p in cfg.dedup.against] if dedup_opts else []

    logs = downloads + [S.merge_logs("read", [f.result().log for f in parsed], out / "rejects" / "read.jsonl")]
    shards = [f.result() for f in filtered]
    if filter_opts:
        logs.append(S.merge_logs("filter", [s.log for s in shards], out / "rejects" / "filter.jsonl"))
    records = [r for s in shards for r in s.records]
    del shards, parsed, filtered

    cluster_sizes: list[int] = []
    if dedup_opts:
        dups = cluster_task(signed, refs, dedup_opts)
        records, dedup_log, clusters = S.apply_duplicates(records, dups.items, out / "rejects" / "dedup.jsonl")
        dedup_log.info["dedup"] = dups.info
        write_rows(out / "clusters.jsonl", clusters)
        cluster_sizes = S.cluster_sizes(dups.items)
        logs.append(dedup_log)

    outputs = {fmt: str(out / "data" / f"{fmt}.jsonl") for fmt in cfg.pipeline.formats}
    batch = S.Batch(records)
    writes = {fmt: write_task.submit(batch, fmt, path) for fmt, path in outputs.items()}
    for fmt, fut in writes.items():
        logs.append(S.merge_logs(f"write:{fmt}", [fut.result()], out / "rejects" / f"write-{fmt}.jsonl"))
    for log in logs:
        print(log.equation())
    return CurateResult(logs, records, outputs, cluster_sizes, published)
