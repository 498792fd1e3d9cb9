"""Publish to and download from the Hugging Face Hub, through `huggingface_hub` and Parquet.

Plain functions (no Prefect; the flows wrap them):

    write_hub_folder(inputs, out_dir, *, repo_id, formats=("sharegpt",), config_name=None, split="train",
                     stats=None, license=None, languages=None, pretty_name=None, tags=None,
                     read_options=None, dump_options=None, rejects_dir=None, shard_rows=100_000,
                     other_splits=None, other_configs=None, progress=False) -> HubFolder
        The exact Hub-shaped folder: <config>/<split>-0000i-of-0000n.parquet per output format + README.md
        (the dataset card). This is `push --dry-run DIR`; `datasets.load_dataset(DIR, "<config>")` reads it.
    push(inputs, repo_id, *, formats=("sharegpt",), config_name=None, split="train", private=False,
         create_pr=False, token_env="HF_TOKEN", dry_run_dir=None, stats=None, license=None, languages=None,
         pretty_name=None, tags=None, read_options=None, dump_options=None, rejects_dir=None,
         commit_message=None, endpoint=None, retries=2, shard_rows=100_000, progress=False) -> PushResult
        Writes the folder, compares it with the remote files (sha256 / git blob ids) and commits only what
        changed; unchanged data makes no commit (PushResult.changed False, commit_sha None).
    download(name_or_repo, out, *, revision=None, to_format=None, config=None, split=None,
             token_env="HF_TOKEN", stats_path=None, rejects_path=None, endpoint=None, retries=3)
             -> DownloadResult
        A registry name (`published()`) or any OWNER/REPO whose files `convert` can read, into OUT in any
        format; the resolved commit SHA and licence go to the output's stats.json.
    published() -> dict[str, PublishedSet];  find_published(name) -> PublishedSet | None
    resolve_token(token_env="HF_TOKEN", required=True) -> str | None

`inputs` is a list of file paths (read with convert.read_records, format detected unless
read_options.from_format) or an iterable of Conversation records.

The token comes only from the environment variable `token_env` or the Hub's login cache file; it is
never printed, and every error message is scrubbed of it. Set HF_HUB_DISABLE_XET=1 to force the plain
LFS upload path. HF_ENDPOINT is read by huggingface_hub at import: set it before the process starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import formats as format_registry
from .convert import ReadOptions, read_records, write_records
from .errors import InstructgenError
from .formats.base import DumpOptions
from .hub_card import ConfigCard, render_card
from .hub_data import detect_languages, spool_to_parquet
from .hub_data import PublishedSet, find_published, published  # noqa: F401  (part of this module's API)
from .io import RowWriter, write_text_atomic
from .record import Conversation
from .runlog import RunLog

SHARD_RE = r"{config}/{split}-\d{{5}}-of-\d{{5}}\.parquet"


class HubError(InstructgenError):
    """A Hub call failed; the message is one line and never holds the token."""


@dataclass(slots=True)
class HubFolder:
    path: Path
    configs: list[ConfigCard]
    files: list[str]  # paths inside the folder, README.md included
    logs: list[RunLog] = field(default_factory=list)


@dataclass(slots=True)
class PushResult:
    commit_sha: str | None  # None when nothing changed
    changed: bool
    url: str  # the repo page, or the commit / PR page when a commit was made
    head: str | None = None  # the commit that now holds the data (on main, or the PR ref)
    pr_url: str | None = None
    folder: HubFolder | None = None


# -- the token ------------------------------------------------------------------------------------

def resolve_token(token_env: str = "HF_TOKEN", required: bool = True) -> str | None:
    """The token from $token_env, else from the Hub's login cache (`hf auth login`); never printed."""
    value = os.environ.get(token_env, "").strip()
    if value:
        return value
    from huggingface_hub import constants

    cache = Path(constants.HF_TOKEN_PATH)
    if cache.is_file():
        cached = cache.read_text(encoding="utf-8").strip()
        if cached:
            return cached
    if required:
        raise HubError(f"no Hugging Face token: set {token_env} (a token with write access) or run `hf auth login`")
    return None


def scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


# -- the folder -----------------------------------------------------------------------------------

def config_names(formats: Sequence[str], config_name: str | None) -> dict[str, str]:
    """Output format -> Hub config name: the format's name, or --config-name (a prefix with several formats)."""
    if not config_name:
        return {f: f for f in formats}
    if len(formats) == 1:
        return {formats[0]: config_name}
    return {f: f"{config_name}-{f}" for f in formats}


def write_hub_folder(
    inputs: Sequence[str | os.PathLike] | Iterable[Conversation],
    out_dir: str | os.PathLike,
    *,
    repo_id: str,
    formats: Sequence[str] = ("sharegpt",),
    config_name: str | None = None,
    split: str = "train",
    stats: dict[str, Any] | None = None,
    license: str | None = None,
    languages: list[str] | None = None,
    pretty_name: str | None = None,
    tags: list[str] | None = None,
    read_options: ReadOptions | None = None,
    dump_options: DumpOptions | None = None,
    rejects_dir: str | os.PathLike | None = None,
    shard_rows: int = 100_000,
    other_splits: dict[str, list[str]] | None = None,
    other_configs: list[dict[str, Any]] | None = None,
    progress: bool = False,
) -> HubFolder:
    """Convert the records to every format and write <config>/<split>-*.parquet + README.md under out_dir."""
    formats = list(dict.fromkeys(formats))
    if not formats:
        raise InstructgenError("no output format given; pass --formats, e.g. --formats sharegpt,moss")
    for fmt in formats:
        if not format_registry.get(fmt).writable:
            raise InstructgenError(f"{fmt} can be read but not written; choose from "
                                   f"{', '.join(format_registry.names(writable_only=True))}")
    names = config_names(formats, config_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def rejects(stage: str) -> str | None:
        return str(Path(rejects_dir) / f"{stage}.rejects.jsonl") if rejects_dir else None

    read_log = RunLog("push:read", rejects("read"))
    logs = {f: RunLog(f"push:{f}", rejects(f)) for f in formats}
    opts = dump_options or DumpOptions()
    with tempfile.TemporaryDirectory(prefix="instructgen-push-") as spool_dir:
        spools = {f: RowWriter(Path(spool_dir) / f"{f}.jsonl") for f in formats}
        try:
            records = _records(inputs, read_log, read_options)
            if progress:
                from tqdm import tqdm

                records = tqdm(records, unit=" rec", desc="push", file=sys.stderr, mininterval=0.5)
            for conv in records:
                read_log.emitted()
                for fmt in formats:
                    logs[fmt].took_in()
                    write_records((conv,), spools[fmt], fmt, logs[fmt], opts)
            for w in spools.values():
                w.close()
        except BaseException:
            for w in spools.values():
                w.abort()
            raise
        finally:
            for log in [read_log, *logs.values()]:
                log.close()
        if read_log.n_out == 0:
            raise InstructgenError("no record to push" + (f" (all {read_log.n_in} were rejected; see "
                                                          f"{read_log.rejects_path})" if read_log.n_in else ""))
        cards, files = [], []
        for fmt in formats:
            config = names[fmt]
            if logs[fmt].n_out == 0:
                top = logs[fmt].reasons.most_common(1)
                raise InstructgenError(f"no record could be written as {fmt}" + (f": {top[0][0][1]}" if top else ""))
            for old in out.glob(f"{config}/{split}-*.parquet"):
                old.unlink()
            written, schema, examples = spool_to_parquet(Path(spool_dir) / f"{fmt}.jsonl", out / config, split,
                                                         shard_rows)
            files += [f"{config}/{name}" for name in written]
            splits = sorted({split, *(other_splits or {}).get(config, [])})
            cards.append(ConfigCard(config, fmt, logs[fmt].n_out, schema, examples, splits))
        if languages is None:
            languages = detect_languages(Path(spool_dir) / f"{formats[0]}.jsonl")
    card = render_card(repo_id, cards, license=license, languages=languages, pretty_name=pretty_name,
                       tags=tags, stats=stats, other_configs=other_configs)
    write_text_atomic(out / "README.md", card)
    return HubFolder(out, cards, sorted(files) + ["README.md"], [read_log, *logs.values()])


def _records(inputs, log: RunLog, read_options: ReadOptions | None) -> Iterable[Conversation]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and all(isinstance(i, (str, os.PathLike)) for i in inputs):
        return read_records([str(i) for i in inputs], log, read_options or ReadOptions())
    return _counted(inputs, log)


def _counted(records: Iterable[Conversation], log: RunLog) -> Iterable[Conversation]:
    for conv in records:
        log.took_in()
        yield conv


# -- push -----------------------------------------------------------------------------------------

def push(
    inputs: Sequence[str | os.PathLike] | Iterable[Conversation],
    repo_id: str,
    *,
    formats: Sequence[str] = ("sharegpt",),
    config_name: str | None = None,
    split: str = "train",
    private: bool = False,
    create_pr: bool = False,
    token_env: str = "HF_TOKEN",
    dry_run_dir: str | os.PathLike | None = None,
    stats: dict[str, Any] | None = None,
    license: str | None = None,
    languages: list[str] | None = None,
    pretty_name: str | None = None,
    tags: list[str] | None = None,
    read_options: ReadOptions | None = None,
    dump_options: DumpOptions | None = None,
    rejects_dir: str | os.PathLike | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    retries: int = 2,
    shard_rows: int = 100_000,
    progress: bool = False,
) -> PushResult:
    """Publish the records as one Parquet config per format; a no-op when the Hub already has them."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise InstructgenError(f"--repo must be OWNER/NAME, got {repo_id!r}")
    folder_args = dict(repo_id=repo_id, formats=formats, config_name=config_name, split=split, stats=stats,
                       license=license, languages=languages, pretty_name=pretty_name, tags=tags,
                       read_options=read_options, dump_options=dump_options, rejects_dir=rejects_dir,
                       shard_rows=shard_rows, progress=progress)
    if dry_run_dir is not None:
        folder = write_hub_folder(inputs, dry_run_dir, **folder_args)
        return PushResult(None, False, str(Path(dry_run_dir).resolve()), folder=folder)

    token = resolve_token(token_env)
    api, endpoint = _api(endpoint, token)
    ctx = _ErrorContext(endpoint, token, token_env, repo_id, access="write")
    with ctx:
        repo_url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        remote = _remote_files(api, repo_id)
    names = config_names(list(dict.fromkeys(formats)), config_name)
    with tempfile.TemporaryDirectory(prefix="instructgen-hub-") as tmp:
        kept = [{k: v for k, v in c.items() if k != "default"} for c in remote.configs
                if c.get("config_name") not in names.values()]
        folder = write_hub_folder(inputs, tmp, other_splits=_other_splits(remote.files, names.values(), split),
                                  other_configs=kept, **folder_args)
        _refuse_token_in_files(folder, token, token_env)
        for attempt in range(retries + 1):
            with ctx:
                try:
                    return _commit_folder(api, repo_id, folder, names.values(), split, create_pr,
                                          commit_message, repo_url, remote if attempt == 0 else None)
                except Exception as e:
                    if attempt < retries and _is_transient(e):
                        print(f"instructgen push: {_one_line(scrub(str(e), token))}; retrying "
                              f"({attempt + 1}/{retries})", file=sys.stderr)
                        time.sleep(2 ** attempt)
                        continue
                    raise
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Remote:
    head: str
    files: dict[str, Any]  # path -> RepoFile
    configs: list[dict[str, Any]]  # the `configs` of the remote card


def _remote_files(api, repo_id: str) -> _Remote:
    info = api.dataset_info(repo_id)
    tree = api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, revision=info.sha)
    card = info.card_data.to_dict() if info.card_data is not None else {}
    configs = [c for c in card.get("configs") or [] if isinstance(c, dict) and c.get("config_name")]
    return _Remote(info.sha, {f.path: f for f in tree if hasattr(f, "blob_id")}, configs)


def _other_splits(remote: dict[str, Any], configs: Iterable[str], split: str) -> dict[str, list[str]]:
    """Splits already on the Hub for our configs, so the card keeps listing them."""
    out: dict[str, list[str]] = {}
    for config in configs:
        found = {m.group(1) for p in remote if (m := re.fullmatch(rf"{re.escape(config)}/(\w+)-\d{{5}}-of-\d{{5}}"
                                                                    r"\.parquet", p))}
        out[config] = sorted(found - {split})
    return out


def _commit_folder(api, repo_id, folder: HubFolder, configs, split, create_pr, message, repo_url,
                   remote: _Remote | None) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    remote = remote or _remote_files(api, repo_id)
    changed = [p for p in folder.files if not _same_file(folder.path / p, remote.files.get(p))]
    ours = [re.compile(SHARD_RE.format(config=re.escape(c), split=re.escape(split))) for c in configs]
    stale = [p for p in remote.files if p not in folder.files and any(r.fullmatch(p) for r in ours)]
    if not changed and not stale:
        return PushResult(None, False, repo_url, head=remote.head, folder=folder)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder.path / p)) for p in changed]
    operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
    rows = ", ".join(f"{c.name} {c.rows}" for c in folder.configs)
    info = api.create_commit(
        repo_id, operations, repo_type="dataset", create_pr=create_pr, parent_commit=remote.head,
        commit_message=message or f"instructgen push: {split} ({rows} rows)",
        commit_description=f"{len(changed)} file(s) added or changed, {len(stale)} removed.",
    )
    return PushResult(info.oid, True, info.pr_url or info.commit_url, head=info.oid, pr_url=info.pr_url,
                      folder=folder)


def _same_file(local: Path, remote) -> bool:
    if remote is None:
        return False
    data = local.read_bytes()
    if remote.lfs is not None:
        return remote.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return remote.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _refuse_token_in_files(folder: HubFolder, token: str, token_env: str) -> None:
    needle = token.encode()
    for p in folder.files:
        if needle in (folder.path / p).read_bytes():
            raise HubError(f"{p} contains the value of {token_env}; refusing to publish a secret "
                           "(remove it from the data or stats)")


# -- errors ---------------------------------------------------------------------------------------

def _api(endpoint: str | None, token: str | None):
    from huggingface_hub import HfApi, constants

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    return HfApi(endpoint=endpoint, token=token or False), endpoint


def _causes(e: BaseException) -> Iterable[BaseException]:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _status(e: BaseException) -> int | None:
    for c in _causes(e):
        response = getattr(c, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _is_transport(e: BaseException) -> bool:
    """A network failure with no HTTP answer (connection refused, reset, timeout)."""
    for c in _causes(e):
        if isinstance(c, (ConnectionError, TimeoutError)):
            return True
        if type(c).__module__.split(".")[0] in ("httpx", "httpx2") and type(c).__name__.endswith(
                ("ConnectError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout",
                 "PoolTimeout", "ReadError", "WriteError", "RemoteProtocolError", "NetworkError")):
            return True
    return False


def _is_transient(e: BaseException) -> bool:
    return _status(e) in (408, 412, 429, 500, 502, 503, 504) or (_status(e) is None and _is_transport(e))


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())[:400]


class _ErrorContext:
    """Turns any exception from a Hub call into one scrubbed line that says what to do."""

    def __init__(self, endpoint: str, token: str | None, token_env: str, repo_id: str, revision: str | None = None,
                 access: str = "read"):
        self.endpoint, self.token, self.token_env, self.repo_id, self.revision, self.access = (
            endpoint, token, token_env, repo_id, revision, access)

    def __enter__(self) -> "_ErrorContext":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (InstructgenError, KeyboardInterrupt)):
            return False
        raise HubError(scrub(self.message(exc), self.token)) from None

    def message(self, e: BaseException) -> str:
        from huggingface_hub.errors import (EntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        status, response = _status(e), _response(e)
        kinds = tuple(type(c) for c in _causes(e))
        detail = _one_line(str(e)) or type(e).__name__

        def raised(*types: type) -> bool:
            return any(issubclass(k, types) for k in kinds)

        if raised(OfflineModeIsEnabled):
            return f"HF_HUB_OFFLINE is set, so the Hub at {self.endpoint} is not contacted; unset it to go online"
        if status is None and _is_transport(e):
            return f"cannot reach the Hub at {self.endpoint}: {detail}; check your network or HF_ENDPOINT"
        if response is not None and not _from_a_hub(response):
            return (f"cannot reach the Hub at {self.endpoint}: something answered HTTP {status} without the Hub's "
                    f"headers (a proxy or firewall?); check your network or HF_ENDPOINT")
        if status == 401:
            if not self.token:
                return f"the Hub at {self.endpoint} needs a token for {self.repo_id}: set {self.token_env}"
            return (f"the Hub at {self.endpoint} rejected the token from ${self.token_env} or the login cache "
                    f"(401 Unauthorized); set {self.token_env} to a valid token with {self.access} access")
        if raised(RevisionNotFoundError):
            return f"{self.repo_id}: revision {self.revision!r} not found on {self.endpoint}"
        if raised(EntryNotFoundError):
            return f"{self.repo_id}: a file is missing at this revision ({detail})"
        if status == 404 or raised(RepositoryNotFoundError):
            return (f"dataset repo {self.repo_id} not found on {self.endpoint} (or it is private and the token "
                    f"cannot read it)")
        if status == 403:
            return f"no {self.access} access to {self.repo_id} with this token (403 Forbidden)"
        return f"Hub error on {self.repo_id}: {detail}"


def _response(e: BaseException):
    return next((c.response for c in _causes(e) if getattr(c, "response", None) is not None), None)


def _from_a_hub(response) -> bool:
    """Hub errors carry X-Error-* / X-Request-Id headers or a JSON body; a proxy's bare 404 does not."""
    headers = {k.lower() for k in response.headers}
    if headers & {"x-error-code", "x-error-message", "x-request-id", "x-repo-commit"}:
        return True
    return "json" in response.headers.get("content-type", "")


from .hub_download import DownloadResult, download  # noqa: E402,F401  (it uses the helpers above)
