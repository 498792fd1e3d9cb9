"""LLaMA-Factory's `dataset_info.json` entry for an output file: how its loader must read what we wrote.

Its users' most common failures ("Cannot find valid samples", "Invalid role tag", `KeyError: 'tool'`)
are an entry that does not match the file. The entry is made from the file itself: the format gives
the formatting, columns and tags (with the observation and function tags), the keys the rows carry
give the optional columns (system, history, tools, media), `chosen`/`rejected` give `ranking: true`,
a `label` column gives `kto_tag`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InstructgenError
from .base import MEDIA_KEYS

FORMATTING = {"alpaca": "alpaca", "history": "alpaca", "sharegpt": "sharegpt", "openai": "openai"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"}


def entry(to_format: str, file_name: str, keys: set[str], tags: str | None = None) -> dict[str, Any]:
    """The dataset_info.json entry for a file of `to_format` rows whose rows carry `keys`."""
    formatting = FORMATTING.get(to_format)
    if formatting is None:
        raise InstructgenError(f"--dataset-info: LLaMA-Factory does not read {to_format}; write one of "
                               f"{', '.join(FORMATTING)}")
    ranking, kto = "chosen" in keys, "label" in keys
    e: dict[str, Any] = {"file_name": file_name, "formatting": formatting}
    if ranking:
        e["ranking"] = True
    if formatting == "alpaca":
        columns = {"prompt": "instruction", "query": "input"}
        if not ranking:
            columns["response"] = "output"
        columns.update({c: c for c in ("system", "history") if c in keys})
    else:
        columns = {"messages": "conversations" if formatting == "sharegpt" else "messages"}
        columns.update({c: c for c in ("system", "tools") if c in keys})
    if ranking:
        columns.update(chosen="chosen", rejected="rejected")
    if kto:
        columns["kto_tag"] = "label"
    columns.update({m: m for m in MEDIA_KEYS if m in keys})
    e["columns"] = columns
    if formatting == "sharegpt":
        e["tags"] = dict(SHAREGPT_TAGS)
        if tags == "user-assistant":
            e["tags"].update(user_tag="user", assistant_tag="assistant")
    elif formatting == "openai":
        e["tags"] = dict(OPENAI_TAGS)
    return e


def merge(info_path: str, name: str, new: dict[str, Any]) -> bool:
    """Write `new` as entry `name` of the dataset_info.json at `info_path` (created if missing, other entries
    kept); True when an entry of that name was replaced."""
    from ..io import write_text_atomic

    info: dict[str, Any] = {}
    if os.path.exists(info_path):
        try:
            info = json.loads(Path(info_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InstructgenError(f"--dataset-info {info_path}: cannot read it as JSON ({e}); fix or remove it") from None
        if not isinstance(info, dict):
            raise InstructgenError(f"--dataset-info {info_path}: not a JSON object of dataset entries")
    replaced = name in info
    info[name] = new
    write_text_atomic(info_path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")
    return replaced


def file_name_for(info_path: str, output: str) -> str:
    """The output as LLaMA-Factory finds it: relative to the folder of dataset_info.json (its dataset_dir)."""
    return os.path.relpath(os.path.abspath(output), os.path.dirname(os.path.abspath(info_path))).replace(os.sep, "/")


def dataset_name(output: str) -> str:
    name = os.path.basename(output)
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
