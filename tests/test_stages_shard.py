"""ARCHITECTURE.md's recipe for a per-shard stage, followed once: one entry in `stages.SHARD_STAGES` (a name,
its config from the run's config, a function over records) and the pipeline runs it on every shard, counts
it in stats.json, writes its rejects file and keys the saved dedup sketches by its settings."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from instructgen.pipeline import OutputFolder, run, stages
from instructgen.pipeline.config import load_config
from instructgen.record import Conversation
from instructgen.runlog import RunLog


class DropWordConfig(BaseModel):
    word: str


def drop_word(records: list[Conversation], config: DropWordConfig, log: RunLog) -> list[Conversation]:
    """Records that do not mention `config.word`; the others dropped as filtered, with the word as the reason."""
    pattern = re.compile(rf"\b{re.escape(config.word)}\b", re.IGNORECASE)
    kept = []
    for conv in records:
        if any(pattern.search(text) for text in conv.texts()):
            log.drop(conv.origin, f"mentions {config.word}", conv.to_dict(), kind="filtered")
        else:
            kept.append(conv)
    return kept


WORD = {"word": "banana"}


def drop_word_section(_pipeline_config) -> DropWordConfig | None:
    return DropWordConfig(**WORD) if WORD["word"] else None


@pytest.fixture
def with_drop_word(monkeypatch):
    monkeypatch.setattr(stages, "SHARD_STAGES", [*stages.SHARD_STAGES,
                                                 stages.ShardStage("drop-word", drop_word_section, drop_word)])
    monkeypatch.setitem(WORD, "word", "banana")


def _data(path: Path) -> tuple[Path, int]:
    rows = [{"instruction": f"Describe item {i} in a sentence about w{i % 13} and w{i % 7}.", "input": "",
             "output": f"Item {i} is a {'banana' if i % 9 == 4 else 'stone'} of colour w{i % 5}."}
            for i in range(120)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path, sum(1 for r in rows if "banana" in r["output"])


def _config(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text('[pipeline]\nformats = ["alpaca"]\nshard_size = 25\n[filter]\nenabled = true\n'
                    f'[dedup]\nenabled = true\n[[sources]]\npath = "{data}"\n', encoding="utf-8")
    return path


def _run(out: Path, cfg_path: Path, messages: list[str] | None = None):
    with OutputFolder(out) as layout:
        announce = messages.append if messages is not None else (lambda _m: None)
        return run(load_config(cfg_path), layout, announce=announce)


def test_a_declared_shard_stage_runs_on_every_shard_and_is_counted(tmp_path, with_drop_word):
    data, bananas = _data(tmp_path / "data.jsonl")
    out = tmp_path / "out"
    summary = _run(out, _config(tmp_path, data))
    assert summary.balanced
    rows = {s["stage"]: s for s in orjson.loads((out / "stats.json").read_bytes())["stages"]}
    assert list(rows)[:3] == ["read", "filter", "drop-word"]  # in declared order, after the filter
    word = rows["drop-word"]
    assert word["in"] == rows["filter"]["out"] and word["filtered"] == bananas > 0
    assert word["out"] == word["in"] - bananas == rows["dedup"]["in"]
    rejects = [orjson.loads(line) for line in (out / "rejects" / "drop-word.jsonl").read_bytes().splitlines()]
    assert len(rejects) == bananas
    assert {r["stage"] for r in rejects} == {"drop-word"} and {r["reason"] for r in rejects} == {"mentions banana"}
    assert [r["origin"] for r in rejects] == sorted((r["origin"] for r in rejects),
                                                    key=lambda o: int(o.rsplit(":", 1)[1]))  # shard order kept
    written = (out / "data" / "alpaca.jsonl").read_text(encoding="utf-8")
    assert "banana" not in written and written.count("\n") == rows["write:alpaca"]["out"]


def test_a_stage_that_is_off_leaves_no_row_and_its_settings_key_the_saved_sketches(tmp_path, with_drop_word):
    data, _ = _data(tmp_path / "data.jsonl")
    out = tmp_path / "out"
    cfg = _config(tmp_path, data)
    _run(out, cfg)
    messages: list[str] = []
    _run(out, cfg, messages)
    assert any("signatures reused" in m for m in messages)  # same stage settings: reused

    WORD["word"] = "stone"  # other settings yield other records: sketched again, saved beside
    messages.clear()
    summary = _run(out, cfg, messages)
    assert not any("signatures reused" in m for m in messages)
    assert len(list((out / "signatures").iterdir())) == 2
    assert {s["stage"]: s for s in summary.stages}["drop-word"]["filtered"] > 0

    WORD["word"] = ""  # off
    summary = _run(out, cfg)
    assert "drop-word" not in {s["stage"] for s in summary.stages} and summary.balanced
    assert not (out / "rejects" / "drop-word.jsonl").exists()
