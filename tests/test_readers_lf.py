"""Issue 20.2: `convert --dataset-info` writes the dataset_info.json entry LLaMA-Factory needs, and LLaMA-Factory's
own parser (`get_dataset_list`) and converter read every record of every real set through that entry
(sft, rm pairs and kto). The converter comes from ../shared/tools/lf_client.py; skipped without it."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from conftest import shared_files
from instructgen.cli import main
from lf_reader import lf_client

REAL = [p for p in shared_files("formats") + shared_files("real") if p.suffix in (".json", ".jsonl")]


@pytest.fixture(scope="module")
def lf():
    client = lf_client()
    if client is None:
        pytest.skip("LLaMA-Factory's converter is not available (../shared/tools/lf_client.py or its wheel)")
    return client


def read_with_entry(client, info: Path, name: str) -> tuple[int, int]:
    """(records LLaMA-Factory aligns, records in the file), reading through the entry `name` of `info`."""
    (attr,) = client.MODS["parser"].get_dataset_list([name], str(info.parent))
    path = info.parent / attr.dataset_name
    text = path.read_text(encoding="utf-8-sig").strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.split("\n") if x.strip()]
    cols = set().union(*(r.keys() for r in rows))
    rows = [{c: r.get(c) for c in cols} for r in rows]  # as `datasets` fills absent columns
    converter = client.MODS["converter"].DATASET_CONVERTERS[attr.formatting](
        attr, types.SimpleNamespace(media_dir=".", dataset_dir="."))
    want = 2 if attr.ranking or attr.kto_tag else 1
    good = 0
    for r in rows:
        out = converter(r)
        prompt, response = out["_prompt"], out["_response"]
        if prompt and len(prompt) % 2 == 1 and len(response) == want and all(
                m["content"] is not None for m in prompt + response):
            good += 1
    return good, len(rows)


@pytest.mark.parametrize("to", ["alpaca", "history", "sharegpt", "openai"])
@pytest.mark.parametrize("src", REAL, ids=lambda p: p.name)
def test_llamafactory_reads_every_record_through_the_entry_we_wrote(src, to, tmp_path, lf, capsys):
    out, info = tmp_path / f"{src.stem}.{to}.json", tmp_path / "dataset_info.json"
    assert main(["convert", str(src), "--to", to, "-o", str(out), "--dataset-info", str(info)]) == 0
    written = len(json.loads(out.read_text(encoding="utf-8")))
    if not written:
        pytest.skip("nothing written")
    good, total = read_with_entry(lf, info, f"{src.stem}.{to}")
    assert (good, total) == (written, written)


def test_the_entry_says_ranking_kto_tags_and_media(tmp_path, capsys):
    rows = [{"conversations": [{"from": "user", "value": "<image>q"}], "chosen": {"from": "assistant", "value": "a"},
             "rejected": {"from": "assistant", "value": "b"}, "images": ["x.jpg"]}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = tmp_path / "data" / "dataset_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"theirs": {"file_name": "t.json"}}))
    out = tmp_path / "pairs.json"
    assert main(["convert", str(src), "--to", "sharegpt", "--tags", "user-assistant", "-o", str(out),
                 "--dataset-info", str(info)]) == 0
    entries = json.loads(info.read_text())
    assert entries["theirs"] == {"file_name": "t.json"}  # other entries are kept
    e = entries["pairs"]
    assert e["file_name"] == "../pairs.json" and e["formatting"] == "sharegpt" and e["ranking"] is True
    assert e["columns"] == {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "images": "images"}
    assert e["tags"]["user_tag"] == "user" and e["tags"]["assistant_tag"] == "assistant"
    assert e["tags"]["observation_tag"] == "observation" and e["tags"]["function_tag"] == "function_call"
    assert main(["convert", str(src), "--to", "moss", "-o", str(tmp_path / "m.jsonl"), "--dataset-info", str(info)]) == 1
    assert "LLaMA-Factory does not read moss" in capsys.readouterr().err
