"""`instructgen stats`: counts, language mix and length percentiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from instructgen.cli import main
from instructgen.curate.stats import dataset_stats, format_stats
from instructgen.record import Conversation, Message, from_pairs

DATA = Path(__file__).parent / "data_curate"


def test_counts_languages_and_percentiles():
    records = [from_pairs([("Write a short poem about the sea and the wind.", "Waves.")]),
               from_pairs([("请写一首关于大海的短诗。", "海浪翻滚。")]),
               from_pairs([("Explain gravity to a child in simple words.", "")], system="Be brief."),
               Conversation([Message("user", "Hi there friend"), Message("assistant", "Hello!"),
                             Message("user", "How are you today?"), Message("assistant", "Fine, thanks.")])]
    stats = dataset_stats(records)
    assert stats["records"] == 4 and stats["multi_turn"] == 1 and stats["with_system"] == 1
    assert stats["empty_output"] == 1
    assert stats["languages"] == {"en": 2, "zh": 1, "unknown": 1}  # "Hi there friend": too short to tell
    chars = [len(r.turns[0].content) for r in records]
    row = stats["lengths"]["instruction_chars"]
    assert row["max"] == max(chars) and row["p50"] == round(float(np.percentile(chars, 50)), 1)
    assert row["p5"] <= row["p25"] <= row["p50"] <= row["p75"] <= row["p95"] <= row["max"]
    assert stats["lengths"]["instruction_units"]["max"] == 11  # 请写一首关于大海的短诗: 11 characters > 10 words
    text = format_stats(stats)
    assert "records        4" in text and "zh 25.0 %" in text


def test_empty_dataset():
    stats = dataset_stats([])
    assert stats["records"] == 0 and stats["lengths"] == {}
    assert "records        0" in format_stats(stats)


def test_cli_stats_end_to_end(tmp_path, capsys):
    out = tmp_path / "stats.json"
    assert main(["stats", str(DATA / "junk.jsonl"), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    stats = json.loads(out.read_text())
    assert stats["records"] == 19 and stats["unreadable_rows"] == 1
    assert stats["formats"] == {"alpaca": 19}
    assert set(stats["languages"]) >= {"en", "zh", "fr"}
    assert "languages" in captured.out and "p50" in captured.out
    assert "unreadable rows (not counted above): 1" in captured.err
