"""Multi-turn self-chat against the LLM test double: a user simulator and the assistant, the junk rules per turn.

The double's simulator is, per topic, talkative (never ends), brief (ends after 1-2 turns), mute (ends at once)
or echoing (from turn 2 asks to be repeated word for word, and the assistant does: junk for the echo rule).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructgen.curate.filter import FilterConfig, filter_records
from instructgen.generate.chat import EMPTY_CHAT
from instructgen.generate.config import GenerateConfig
from instructgen.generate.run import generate
from instructgen.runlog import RunLog
from llm_double import EN, ZH, LLMDouble


def _topics(tmp_path: Path, lang: str) -> Path:
    path = tmp_path / "topics.txt"
    path.write_text("\n".join((ZH if lang == "zh" else EN)["topic"]) + "\n\n", encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_self_chat_stops_when_the_user_ends_or_at_the_turn_cap_and_junk_turns_are_cut(tmp_path, lang):
    turns = 4
    with LLMDouble(faults={"429": 0.05, "500": 0.05}, planted_rate=0.15) as double:
        config = GenerateConfig(seed_tasks=[_topics(tmp_path, lang)], mode="chat", turns=turns, lang=lang,
                                format="sharegpt", base_url=double.base_url, model="double", concurrency=6,
                                retry_backoff=0.01, cache_dir=tmp_path / "cache")
        log = RunLog("generate", tmp_path / "rejects.jsonl")
        result = generate(config, tmp_path / "out.jsonl", log,
                          turn_filter=lambda recs, lg: filter_records(recs, FilterConfig(), lg))
        planted = dict(double.planted_chat)
    rows, rejects = _lines(tmp_path / "out.jsonl"), _lines(tmp_path / "rejects.jsonl")
    assert all(lg.balanced for lg in result.logs) and result.failures == 0
    kinds = set(planted.values())
    assert {"mute", "echo", "brief", "talkative"} <= kinds  # every behaviour was met
    by_topic = {r["meta"]["chat"]["topic"]: r for r in rows}
    for topic, kind in planted.items():
        if kind == "mute":
            assert topic not in by_topic
            assert any(r["reason"] == EMPTY_CHAT and r["raw"]["topic"] == topic for r in rejects)
            continue
        conv = by_topic[topic]["conversations"]
        assert [m["from"] for m in conv] == ["human", "gpt"] * (len(conv) // 2) and conv  # alternating
        n = len(conv) // 2
        if kind == "talkative":
            assert n == turns and by_topic[topic]["meta"]["chat"]["ended_by"] == "--turns"
        elif kind == "brief":
            assert n < turns and by_topic[topic]["meta"]["chat"]["ended_by"] == "user"
        else:  # echo: turn 2 is junk, the chat is cut before it
            assert n == 1
            assert any(r["kind"] == "cut" and r["reason"] == "echo" and r["origin"].startswith("chat ")
                       for r in rejects)
    assert len(rows) == sum(kind != "mute" for kind in planted.values())


def test_cli_chat_mode_with_topics_file(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        out = tmp_path / "chats.jsonl"
        r = subprocess.run([sys.executable, "-m", "instructgen.cli", "generate", "--mode", "chat", "--topics",
                            str(_topics(tmp_path, "en")), "--turns", "2", "-n", "5", "-o", str(out), "--format",
                            "openai", "--base-url", double.base_url, "--model", "double", "--progress", "never"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = _lines(out)
    assert len(rows) == 5 and all([m["role"] for m in row["messages"]][0] == "user" for row in rows)
    assert "generate: in 5 = out 5" in r.stderr
