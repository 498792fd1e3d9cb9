"""Issue 20.2: `validate --for llamafactory` applies LLaMA-Factory's own rules and says, per record, what it
would skip and why. Its verdicts are checked against LLaMA-Factory 0.9.5's real converter and preprocessing
rule (../shared/tools/lf_client.py, loaded by lf_reader.py) on every real set, on our outputs of them, and on
planted bad records; that comparison is skipped without LLaMA-Factory's wheel, the rest is not."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from conftest import shared_files
from instructgen.cli import main
from instructgen.formats.llamafactory import entry
from instructgen.formats.llamafactory_check import attributes, skip_reason
from instructgen.io import read_rows
from lf_reader import lf_client

REAL = [p for p in shared_files("formats") + shared_files("real") if p.suffix in (".json", ".jsonl")]

TURN = {"from": "human", "value": "q"}
ANSWER = {"from": "gpt", "value": "a"}
PLANTED = [  # (row, what the reason must say)
    ({"conversations": [TURN, ANSWER]}, None),
    ({"conversations": [TURN, TURN, ANSWER]}, "Invalid role tag"),
    ({"conversations": [ANSWER, TURN]}, "Invalid role tag"),
    ({"conversations": [TURN, ANSWER, TURN]}, "Invalid message count"),
    ({"conversations": [TURN, {"from": "bot", "value": "a"}]}, "none of the entry's tags"),
    ({"conversations": [TURN, {"from": "system", "value": "s"}, ANSWER]}, "Invalid role tag"),
    ({"conversations": [{"from": "system", "value": "s"}, TURN, ANSWER]}, None),
    ({"conversations": [TURN, {"from": "gpt", "value": None}]}, "no text"),
    ({"conversations": []}, "prompt is 0 turns"),
]


def _lf_good(client, rows: list[dict], e: dict) -> list[bool]:
    """Per row: does LLaMA-Factory's own converter align it into what its preprocessing keeps."""
    (attr,) = client.MODS["parser"].get_dataset_list(["x"], {"x": e})
    cols = set().union(*(r.keys() for r in rows))
    converter = client.MODS["converter"].DATASET_CONVERTERS[attr.formatting](
        attr, types.SimpleNamespace(media_dir=".", dataset_dir="."))
    want = 2 if attr.ranking or attr.kto_tag else 1
    good = []
    for r in rows:
        out = converter({c: r.get(c) for c in cols})
        prompt, response = out["_prompt"], out["_response"]
        good.append(bool(prompt) and len(prompt) % 2 == 1 and len(response) == want
                    and all(isinstance(m["content"], str) for m in prompt + response))
    return good


@pytest.fixture(scope="module")
def lf():
    client = lf_client()
    if client is None:
        pytest.skip("LLaMA-Factory's converter is not available (../shared/tools/lf_client.py or its wheel)")
    return client


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_validate_names_each_planted_record_llamafactory_would_skip(tmp_path, capsys):
    src = write_jsonl(tmp_path / "planted.jsonl", [row for row, _ in PLANTED])
    assert main(["validate", str(src), "--for", "llamafactory", "--format", "sharegpt"]) == 1
    out, err = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    for i, (_, why) in enumerate(PLANTED, 1):
        origin = f"{src}:{i}"
        if why is None:
            assert origin not in lines, i
        else:
            assert why in lines[origin], (i, lines.get(origin))
    assert f"would skip {sum(w is not None for _, w in PLANTED)} of {len(PLANTED)} records" in err


def test_a_kto_entry_skips_a_record_without_a_label(tmp_path, capsys):
    kto = {"conversations": [TURN, ANSWER], "label": True}
    src = write_jsonl(tmp_path / "kto.jsonl", [kto, {**kto, "label": None}])
    assert main(["validate", str(src), "--for", "llamafactory"]) == 1
    assert f"{src}:2: KTO: 'label' is None, not true/false" in capsys.readouterr().out


def test_an_entry_from_dataset_info_is_applied_as_llamafactory_resolves_it(tmp_path, capsys):
    src = write_jsonl(tmp_path / "d.jsonl", [{"conversations": [{"from": "user", "value": "q"},
                                                                {"from": "assistant", "value": "a"}]}])
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"d": {"file_name": "d.jsonl", "formatting": "sharegpt"},
                                "ok": {"file_name": "d.jsonl", "formatting": "sharegpt",
                                       "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user",
                                                "assistant_tag": "assistant"}}}))
    assert main(["validate", str(src), "--for", "llamafactory", "--dataset-info", str(info)]) == 1
    assert "turn 1 has role 'user', none of the entry's tags" in capsys.readouterr().out  # default tags: human/gpt
    assert main(["validate", str(src), "--for", "llamafactory", "--dataset-info", str(info), "--dataset", "ok"]) == 0
    assert main(["validate", str(src), "--for", "llamafactory", "--dataset-info", str(info), "--dataset", "no"]) == 1
    assert "no entry 'no'" in capsys.readouterr().err


def test_planted_verdicts_equal_llamafactorys_own(lf):
    rows = [row for row, _ in PLANTED]
    e = entry("sharegpt", "x", set().union(*rows))
    ours = [skip_reason(r, attributes(e), set().union(*rows)) is None for r in rows]
    assert ours == _lf_good(lf, rows, e)


@pytest.mark.parametrize("src", REAL, ids=lambda p: p.name)
def test_verdicts_on_real_sets_and_our_outputs_equal_llamafactorys_own(src, lf, tmp_path, capsys):
    """Every real set as it is (in the formats LLaMA-Factory reads) and converted to each of them."""
    candidates = [(src, None)]
    for to in ("alpaca", "sharegpt", "openai"):
        out = tmp_path / f"out.{to}.jsonl"
        if main(["convert", str(src), "--to", to, "-o", str(out)]) == 0:
            candidates.append((out, to))
    checked = 0
    for path, to in candidates:
        rows = [r.data for r in read_rows(str(path)) if r.error is None]
        if to is None:
            from instructgen import formats

            to = formats.detect_rows(rows[:formats.DETECT_SAMPLE], str(path))
            if to not in ("alpaca", "sharegpt", "openai", "history"):
                continue
        cols = set().union(*rows)
        tags = "user-assistant" if to == "sharegpt" and any(
            t.get("from") == "assistant" for r in rows for t in r.get("conversations") or []) else None
        e = entry(to, "x", cols, tags)
        ours = [skip_reason(r, attributes(e), cols) is None for r in rows]
        assert ours == _lf_good(lf, rows, e), (path.name, to)
        checked += 1
    assert checked
    capsys.readouterr()
