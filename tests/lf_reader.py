"""LLaMA-Factory's own dataset converter as a reader of our outputs (through ../shared/tools/lf_client.py).

`lf_client.py FILE alpaca|sharegpt|openai` reads supervised data only; `lf_read` adds the
preference layouts LLaMA-Factory's data/dataset_info.json declares: `ranking: true` (chosen and
rejected columns) and `kto_tag` (a boolean `label` column). A record counts as read when
LLaMA-Factory aligns it into a prompt of odd length and the response(s) its layout needs.

Differences from lf_client.py, each toward what LLaMA-Factory itself does:
- an openai file is read by LLaMA-Factory's OpenAI converter (`"formatting": "openai"` in
  dataset_info.json), which turns an assistant message's `tool_calls` into a function turn and
  merges consecutive tool results; lf_client.py reads it with the ShareGPT converter, which
  knows neither (a call-only message has `"content": null`, parallel calls have several results);
- JSONL lines end at "\n" only, as `datasets` reads them (str.splitlines() also splits inside
  strings holding U+2028, which JSON writes raw);
- a sharegpt file whose turns say `assistant` (BELLE) is read with that assistant tag, as its
  dataset_info.json entry would declare it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import types
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INSTRUCTGEN_SHARED", REPO.parent / "shared"))
LF_CLIENT = SHARED / "tools" / "lf_client.py"


@cache
def lf_client():
    """The lf_client module with LLaMA-Factory's converter loaded, or None when it is not available."""
    if not LF_CLIENT.exists():
        return None
    spec = importlib.util.spec_from_file_location("lf_client", LF_CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.MODS = module.load_lf()
    except Exception:  # noqa: BLE001 - no wheel and no registry: the caller skips
        return None
    return module


def lf_read(path: str | Path, formatting: str, *, ranking: bool = False, kto: bool = False) -> tuple[int, int, list]:
    """(records LLaMA-Factory aligned, records in the file, its warnings) for our output file."""
    client = lf_client()
    assert client is not None, "LLaMA-Factory's converter is not available"
    client.WARN.clear()
    text = Path(path).read_text(encoding="utf-8-sig").strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.split("\n") if line.strip()]
    cols = set().union(*(r.keys() for r in rows)) if rows else set()
    rows = [{c: r.get(c) for c in cols} for r in rows]  # as `datasets` fills absent columns with None
    attr = client.MODS["parser"].DatasetAttr("file", str(path), formatting=formatting)

    def opt(c):
        return c if c in cols else None

    if formatting == "alpaca":
        attr.history, attr.system = opt("history"), opt("system")
    elif formatting == "sharegpt":
        attr.messages, attr.system, attr.tools = "conversations", opt("system"), opt("tools")
        if any(t.get("from") == "assistant" for r in rows for t in r.get("conversations") or []):
            attr.assistant_tag = "assistant"
    else:
        attr.messages, attr.tools = "messages", opt("tools")
        attr.role_tag, attr.content_tag = "role", "content"
        attr.user_tag, attr.assistant_tag, attr.system_tag = "user", "assistant", "system"
        attr.observation_tag, attr.function_tag = "tool", "function_call"
    if ranking:
        attr.ranking, attr.chosen, attr.rejected = True, "chosen", "rejected"
    if kto:
        attr.kto_tag = "label"
    converter = client.MODS["converter"].DATASET_CONVERTERS[attr.formatting](
        attr, types.SimpleNamespace(media_dir=".", dataset_dir="."))
    want = 2 if ranking or kto else 1
    good = 0
    for r in rows:
        out = converter(r)
        prompt, response = out["_prompt"], out["_response"]
        if (prompt and len(prompt) % 2 == 1 and len(response) == want
                and all(m["content"] is not None for m in prompt + response)):
            good += 1
    return good, len(rows), list(client.WARN)


LF_READS = {"alpaca": "alpaca", "history": "alpaca", "sharegpt": "sharegpt", "openai": "openai"}
