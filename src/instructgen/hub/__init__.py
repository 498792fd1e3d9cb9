"""Publish to and download from the Hugging Face Hub, through `huggingface_hub` and Parquet.

    push              records -> one Parquet config per format + a dataset card, committing only what changed
    write_hub_folder  the same folder, written locally (push --dry-run)
    download          a published set (registry name or OWNER/REPO) at a pinned revision -> records
    PublishConfig, DownloadOptions   the stage settings (CLI flags, TOML sections, library arguments)
    CardInfo, SourceInfo             what the card says beyond the data
    published, find_published        the registry of well-known sets
    resolve_token, HubError, RetryPolicy, HUB_RETRY

Modules, each importing only from those after it: publish (push), fetch (download), folder,
card, archive, files, parquet, registry, config, http. Names are loaded on first use, so
`instructgen --help` does not pay for huggingface_hub, pyarrow or YAML. Nothing here imports
Prefect. The token comes only from $token_env or the Hub's login cache and never reaches an
output, a card or an error. HF_ENDPOINT is read by huggingface_hub at import.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "push": "publish", "PushResult": "publish",
    "download": "fetch", "DownloadResult": "fetch",
    "write_hub_folder": "folder", "HubFolder": "folder", "RemoteHoldings": "folder", "plan_paths": "folder",
    "CardInfo": "card", "ConfigCard": "card", "SourceInfo": "card", "render_card": "card",
    "PublishConfig": "config", "DownloadOptions": "config", "config_names": "config",
    "PublishedSet": "registry", "published": "registry", "find_published": "registry",
    "resolve_token": "http", "HubError": "http", "RetryPolicy": "http", "HUB_RETRY": "http",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
