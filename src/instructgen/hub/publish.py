"""`push` (hub.push): publish records as one Parquet config per format, committing only what changed.

    push(records_or_paths, config, card=None, *, dry_run_dir=None, rejects_dir=None, read_options=None,
         dump_options=None, endpoint=None, progress=False) -> PushResult

The folder is compared with the remote files (sha256 / git blob ids): unchanged data makes no
commit. The commit names its parent, so it can only land on the head it was computed against.
When the answer to a commit is lost (a dropped connection, a 5xx after the Hub applied it), the
remote is read again before anything else: a head that moved and now holds exactly this folder is
reported as the commit (`recovered`), never as "unchanged"; a head that did not move means the
commit did not land, and it is sent again.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..convert import ReadOptions
from ..formats.base import DumpOptions
from .card import CardInfo
from .config import PublishConfig
from .folder import HubFolder, Records, RemoteHoldings, plan_paths, shard_pattern, write_hub_folder
from .http import HUB_RETRY, Hub, HubError, hub_client, hub_errors, is_transient, resolve_token, status_of


@dataclass(slots=True)
class PushResult:
    commit_sha: str | None  # the commit this push made; None when nothing changed
    changed: bool
    url: str  # the repo page, or the commit / PR page when a commit was made
    head: str | None = None  # the commit that now holds the data (on main, or the PR ref)
    pr_url: str | None = None
    folder: HubFolder | None = None  # what was built (counts, configs); its files outlive only a dry run
    recovered: bool = False  # the Hub's answer to the commit was lost; the commit was found on the Hub


def push(records_or_paths: Records, config: PublishConfig, card: CardInfo | None = None, *,
         dry_run_dir: str | os.PathLike | None = None, rejects_dir: str | os.PathLike | None = None,
         read_options: ReadOptions | None = None, dump_options: DumpOptions | None = None,
         endpoint: str | None = None, progress: bool = False, written: dict[str, str] | None = None) -> PushResult:
    """Publish the records as one Parquet config per format; a no-op when the Hub already has them.
    `written`: formats whose rows are already in a JSONL file, taken as they are (see write_hub_folder)."""
    how = dict(read_options=read_options, dump_options=dump_options, rejects_dir=rejects_dir, progress=progress,
               written=written)
    if dry_run_dir is not None:
        folder = write_hub_folder(records_or_paths, dry_run_dir, config, card, **how)
        return PushResult(None, False, str(Path(dry_run_dir).resolve()), folder=folder)
    plan_paths(records_or_paths, config, None, rejects_dir, written=written)
    hub = hub_client(resolve_token(config.token_env), endpoint, config.token_env)
    with hub_errors(hub, config.repo, access="write"):
        repo_url = str(HUB_RETRY.call(lambda: hub.api.create_repo(config.repo, repo_type="dataset",
                                                                  private=config.private, exist_ok=True),
                                      f"create {config.repo}", hub))
        remote = HUB_RETRY.call(lambda: read_remote(hub, config.repo), f"read {config.repo}", hub)
    names = config.config_names()
    holdings = RemoteHoldings(other_splits(remote.files, names.values(), config.split),
                              [{k: v for k, v in c.items() if k != "default"} for c in remote.configs
                               if c.get("config_name") not in names.values()])
    with tempfile.TemporaryDirectory(prefix="instructgen-hub-") as tmp:
        folder = write_hub_folder(records_or_paths, Path(tmp) / "folder", config, card, holdings=holdings, **how)
        refuse_token_in_files(folder, hub)
        with hub_errors(hub, config.repo, access="write"):
            return Committer(hub, config, folder, remote, repo_url).run()


# -- the remote -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Remote:
    head: str
    files: dict[str, Any] = field(default_factory=dict)  # path -> RepoFile
    configs: list[dict[str, Any]] = field(default_factory=list)  # the `configs` of the remote card


def read_remote(hub: Hub, repo_id: str, revision: str | None = None) -> Remote:
    """The head, files and card configs of the repo (one try: callers decide about retries)."""
    info = hub.api.dataset_info(repo_id, revision=revision)
    tree = hub.api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, revision=info.sha)
    card = info.card_data.to_dict() if info.card_data is not None else {}
    configs = [c for c in card.get("configs") or [] if isinstance(c, dict) and c.get("config_name")]
    return Remote(info.sha, {f.path: f for f in tree if hasattr(f, "blob_id")}, configs)


def pull_requests(hub: Hub, repo_id: str) -> dict[str, str]:
    """refs/pr/N -> its commit (one try)."""
    refs = hub.api.list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True)
    return {r.ref: r.target_commit for r in refs.pull_requests or []}


def other_splits(remote: dict[str, Any], configs, split: str) -> dict[str, list[str]]:
    """Splits already on the Hub for our configs, so the card keeps listing them."""
    out: dict[str, list[str]] = {}
    for config in configs:
        pattern = re.compile(rf"{re.escape(config)}/(\w+)-\d{{5}}-of-\d{{5}}\.parquet")
        out[config] = sorted({m.group(1) for p in remote if (m := pattern.fullmatch(p))} - {split})
    return out


def file_ids(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a local file: what the Hub lists for LFS and for regular files."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def same_file(ids: tuple[str, str], remote: Any) -> bool:
    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == ids[0]
    return remote.blob_id == ids[1]


def refuse_token_in_files(folder: HubFolder, hub: Hub) -> None:
    needle = (hub.token or "").encode()
    for p in folder.files if needle else ():
        if needle in (folder.path / p).read_bytes():
            raise HubError(f"{p} contains the value of {hub.token_env}; refusing to publish a secret "
                           "(remove it from the data or stats)")


# -- the commit -----------------------------------------------------------------------------------

class Committer:
    """One commit of the folder, sent again only when the remote shows it did not land."""

    def __init__(self, hub: Hub, config: PublishConfig, folder: HubFolder, remote: Remote, repo_url: str):
        self.hub, self.config, self.folder, self.remote, self.repo_url = hub, config, folder, remote, repo_url
        self.ours = [shard_pattern(c, config.split) for c in config.config_names().values()]
        self.sent_on: str | None = None  # the head the last failed attempt was sent on
        self.maybe_landed = False  # its answer was lost: the Hub may have applied it
        self.prs_before: dict[str, str] = {}
        self.ids = {p: file_ids(folder.path / p) for p in folder.files}

    def changes(self, remote: Remote) -> tuple[list[str], list[str]]:
        changed = [p for p in self.folder.files if not same_file(self.ids[p], remote.files.get(p))]
        stale = [p for p in remote.files if p not in self.folder.files and any(r.fullmatch(p) for r in self.ours)]
        return changed, stale

    def unchanged(self) -> PushResult:
        return PushResult(None, False, self.repo_url, head=self.remote.head, folder=self.folder)

    def run(self) -> PushResult:
        if self.changes(self.remote) == ([], []):
            return self.unchanged()
        if self.config.create_pr:
            self.prs_before = HUB_RETRY.call(lambda: pull_requests(self.hub, self.config.repo),
                                             f"list the refs of {self.config.repo}", self.hub)
        return HUB_RETRY.call(self.attempt, f"commit to {self.config.repo}", self.hub, transient=_retry_commit)

    def attempt(self) -> PushResult:
        if self.sent_on is not None:  # an earlier attempt failed: look at the remote before sending again
            found = self.found_pr() if self.config.create_pr and self.maybe_landed else None
            if found is not None:
                return found
            self.remote = read_remote(self.hub, self.config.repo)
            if self.changes(self.remote) == ([], []):
                landed = self.maybe_landed and not self.config.create_pr and self.remote.head != self.sent_on
                return self.found_on_main() if landed else self.unchanged()
        return self.commit()

    def commit(self) -> PushResult:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        changed, stale = self.changes(self.remote)
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(self.folder.path / p)) for p in changed]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        rows = ", ".join(f"{c.name} {c.rows}" for c in self.folder.configs)
        self.sent_on = self.remote.head
        try:
            info = self.hub.api.create_commit(
                self.config.repo, operations, repo_type="dataset", create_pr=self.config.create_pr,
                parent_commit=self.remote.head,
                commit_message=self.config.message or f"instructgen push: {self.config.split} ({rows} rows)",
                commit_description=f"{len(changed)} file(s) added or changed, {len(stale)} removed.",
            )
        except Exception as e:
            self.maybe_landed = status_of(e) != 412  # 412: refused, the head had moved
            raise
        return PushResult(info.oid, True, info.pr_url or info.commit_url, head=info.oid, pr_url=info.pr_url,
                          folder=self.folder)

    def found_on_main(self) -> PushResult:
        sha, repo = self.remote.head, self.config.repo
        return PushResult(sha, True, f"{self.hub.endpoint}/datasets/{repo}/commit/{sha}", head=sha,
                          folder=self.folder, recovered=True)

    def found_pr(self) -> PushResult | None:
        """A pull request opened by the attempt whose answer was lost, holding exactly this folder."""
        repo = self.config.repo
        for ref, sha in sorted(pull_requests(self.hub, repo).items()):
            if ref not in self.prs_before and self.changes(read_remote(self.hub, repo, sha)) == ([], []):
                pr_url = f"{self.hub.endpoint}/datasets/{repo}/discussions/{ref.rsplit('/', 1)[-1]}"
                return PushResult(sha, True, pr_url, head=sha, pr_url=pr_url, folder=self.folder, recovered=True)
        return None


def _retry_commit(e: BaseException) -> bool:
    """Transient failures, and 412: the head moved since the remote was read (read it again, then commit)."""
    return is_transient(e) or status_of(e) == 412
