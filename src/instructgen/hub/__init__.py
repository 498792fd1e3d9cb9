"""Publish to and download from the Hugging Face Hub, through `huggingface_hub` and Parquet.

    push(records_or_paths, config: PublishConfig, card: CardInfo | None = None, *, dry_run_dir=None,
         rejects_dir=None, read_options=None, dump_options=None, endpoint=None, progress=False) -> PushResult
    write_hub_folder(records_or_paths, out_dir, config, card=None, *, read_options=None, dump_options=None,
                     rejects_dir=None, progress=False, layout=None) -> HubFolder
    download(name_or_repo, out, options: DownloadOptions | None = None, *, stats_path=None, rejects_path=None,
             endpoint=None, **option_fields) -> DownloadResult
    published() -> dict[str, PublishedSet];  find_published(name) -> PublishedSet | None
    resolve_token(token_env="HF_TOKEN", required=True) -> str | None

Modules: config (the stage settings), card (the dataset card), folder (the Hub-shaped folder),
push, download, files (which remote files, name checks), archive (hostile archives), parquet,
registry, http (the token, errors, the one retry policy). Each imports only from those below it;
nothing here imports Prefect. The token comes only from $token_env or the Hub's login cache and
never reaches an output, a card or an error. HF_ENDPOINT is read by huggingface_hub at import.
"""

from __future__ import annotations

from .card import CardInfo, ConfigCard, SourceInfo, render_card
from .config import DownloadOptions, PublishConfig, config_names
from .download import DownloadResult, download
from .folder import HubFolder, Layout, plan_paths, write_hub_folder
from .http import HUB_RETRY, HubError, RetryPolicy, resolve_token
from .push import PushResult, push
from .registry import PublishedSet, find_published, published

__all__ = [
    "CardInfo", "ConfigCard", "DownloadOptions", "DownloadResult", "HUB_RETRY", "HubError", "HubFolder", "Layout",
    "PublishConfig", "PublishedSet", "PushResult", "RetryPolicy", "SourceInfo", "config_names", "download",
    "find_published", "plan_paths", "published", "push", "render_card", "resolve_token", "write_hub_folder",
]
