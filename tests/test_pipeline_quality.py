"""The [score] and [select] stages of the pipeline: judged through the judge test double (real HTTP), cached
across scheduled runs, selected with the same walk as `instructgen select`, counted and reported; and
ARCHITECTURE.md's recipe for a run-wide stage (one entry in `passes.RUN_STAGES`) followed once."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from instructgen.cli import main as cli_main
from instructgen.pipeline import OutputFolder, passes, run
from instructgen.pipeline.config import load_config
from instructgen.quality.judges import BUILT_IN
from instructgen.runlog import RunLog
from judge_double import JudgeDouble

SECRET = "sk-test-NEVER-PRINT-THIS-quality"


def _data(path: Path, n: int = 60) -> dict[str, float]:
    """n alpaca records (every third Chinese) whose answers carry QUALITY=q (the judge double's score), plus
    exact copies of the first five (dedup removes them before any judge is asked); origin line -> q."""
    qs, rows = {}, []
    for i in range(n):
        q = (i * 7 % 11) / 10
        instruction = f"解释第{i}个关于城市园艺的话题" if i % 3 == 0 else f"Explain topic {i} about urban gardening"
        rows.append({"instruction": instruction, "input": "",
                     "output": f"Answer {i}: {' '.join(f'w{i}x{j}' for j in range(12))}. QUALITY={q}"})
        qs[f"{path}:{i + 1}"] = q
    rows += rows[:5]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return qs


def _config(tmp_path: Path, data: Path, score: str, select: str = "enabled = false") -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'[pipeline]\nformats = ["alpaca", "sharegpt"]\nshard_size = 20\n[filter]\nenabled = false\n'
                    f'[score]\n{score}\n[select]\n{select}\n[[sources]]\npath = "{data}"\n', encoding="utf-8")
    return path


def _stages(out: Path) -> dict[str, dict]:
    return {s["stage"]: s for s in orjson.loads((out / "stats.json").read_bytes())["stages"]}


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _expected(q: float, judge: str) -> float:
    low, high, _ = BUILT_IN[judge]
    return round((low + q * (high - low)) * 2) / 2


def _assert_chain(stages: dict[str, dict], chain: list[str]) -> None:
    for s in stages.values():
        assert s["in"] == s["out"] + s["rejected"] + s["filtered"] + s["duplicates"] and s["balanced"], s
    for before, after in zip(chain, chain[1:]):
        assert stages[before]["out"] == stages[after]["in"], (before, after)


def test_score_and_select_in_a_scheduled_flow_judge_once_and_select_like_the_command(prefect, tmp_path,
                                                                                     monkeypatch):
    from instructgen_flows.pipeline import run_pipeline

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    data = tmp_path / "data.jsonl"
    qs = _data(data)
    out = tmp_path / "out"
    with JudgeDouble(noscore=0.2, faults={"429": 0.1, "500": 0.1}) as double:
        cfg = _config(tmp_path, data, f'enabled = true\njudge = "alpagasus"\nbase_url = "{double.base_url}"\n'
                      'retry_backoff = 0\nconcurrency = 8',
                      'enabled = true\nby = "alpagasus"\nmin = 2.5\ntop_k = 20\ndiverse = true')
        run_pipeline(str(cfg), str(out))
        paid = double.total_hits
        assert paid > 0
        first = {p: (out / p).read_bytes() for p in ("data/alpaca.jsonl", "data/sharegpt.jsonl",
                                                     "rejects/select.jsonl")}
        run_pipeline(str(cfg), str(out))  # the next scheduled run: every answer comes from OUTPUT/.cache/score
        assert double.total_hits == paid
        assert {p: (out / p).read_bytes() for p in first} == first

    stages = _stages(out)
    _assert_chain(stages, ["read", "dedup", "score", "select", "write:alpaca"])
    assert stages["dedup"]["duplicates"] == 5 and stages["score"]["in"] == 60  # copies are never judged
    assert stages["score"]["out"] == 60 and stages["score"]["score"]["judges"]["alpagasus"]["scored"] == 60
    kept = _lines(out / "data" / "alpaca.jsonl")
    assert 0 < len(kept) <= 20 and len(kept) == stages["select"]["out"]
    assert all(r["meta"]["scores"]["alpagasus"] >= 2.5 for r in kept)
    selected_qs = sorted((_expected(q, "alpagasus") for q in qs.values()), reverse=True)
    assert [r["meta"]["scores"]["alpagasus"] for r in sorted(kept, key=lambda r: -r["meta"]["scores"]["alpagasus"])] \
        == selected_qs[:len(kept)]  # the best records, by the judge's score
    rejects = _lines(out / "rejects" / "select.jsonl")
    assert len(rejects) == stages["select"]["filtered"]
    assert {r["reason"] for r in rejects} <= {"below threshold", "not in the top 20", "near selected record"}

    # the pipeline's selection is the command's: score alone in the pipeline, then `instructgen select`
    only_score = tmp_path / "scored"
    with JudgeDouble(noscore=0.2) as double:
        cfg2 = _config(tmp_path, data, f'enabled = true\njudge = "alpagasus"\nbase_url = "{double.base_url}"\n'
                       'retry_backoff = 0')
        with OutputFolder(only_score) as layout:
            run(load_config(cfg2), layout, announce=lambda _m: None)
    assert cli_main(["select", str(only_score / "data" / "alpaca.jsonl"), "-o", str(tmp_path / "best.jsonl"),
                     "--by", "alpagasus", "--min", "2.5", "--top-k", "20", "--diverse"]) == 0
    assert [r["instruction"] for r in _lines(tmp_path / "best.jsonl")] == [r["instruction"] for r in kept]

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Scores" in report and f"## Selection by `alpagasus`: {len(kept)} of 60 ranked records" in report
    assert "| data.jsonl | 60 |" in report and "top, score" in report and "bottom, score" in report
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_record_no_judge_scores_is_rejected_unscored_and_failures_fail_the_step(tmp_path):
    data = tmp_path / "data.jsonl"
    _data(data, n=12)
    out = tmp_path / "out"
    with JudgeDouble(noscore=1.0, never=True) as double:
        cfg = _config(tmp_path, data, f'enabled = true\njudge = "mt-bench"\nbase_url = "{double.base_url}"\n'
                      'retry_backoff = 0')
        with OutputFolder(out) as layout:
            summary = run(load_config(cfg), layout, announce=lambda _m: None)
    score = {s["stage"]: s for s in summary.stages}["score"]
    assert score["in"] == 12 and score["rejected"] == 12 and score["out"] == 0
    rejects = _lines(out / "rejects" / "score.jsonl")
    assert len(rejects) == 12 and {r["kind"] for r in rejects} == {"unscored"}
    assert all(len(r["replies"]) == 2 for r in rejects)

    from instructgen.errors import InstructgenError

    cfg = _config(tmp_path, data, 'enabled = true\njudge = "mt-bench"\nbase_url = "http://127.0.0.1:9/v1"\n'
                  "retry_backoff = 0\nmax_attempts = 1")
    with pytest.raises(InstructgenError, match="requests to the judge failed for good"):
        with OutputFolder(tmp_path / "out2") as layout:
            run(load_config(cfg), layout, announce=lambda _m: None)


def test_offline_signals_and_a_quota_per_source(tmp_path):
    data_a, data_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _data(data_a, n=30)
    _data(data_b, n=30)
    cfg = tmp_path / "run.toml"
    cfg.write_text('[pipeline]\nformats = ["alpaca"]\n[dedup]\nenabled = false\n[filter]\nenabled = false\n'
                   '[score]\nenabled = true\njudge = "signals"\n'
                   '[select]\nenabled = true\nby = "output_length"\ntop_k = 4\nper = "source"\n'
                   f'[[sources]]\npath = "{data_a}"\n[[sources]]\npath = "{data_b}"\n', encoding="utf-8")
    with OutputFolder(tmp_path / "out") as layout:
        summary = run(load_config(cfg), layout, announce=lambda _m: None)
    stages = {s["stage"]: s for s in summary.stages}
    _assert_chain(stages, ["read", "score", "select", "write:alpaca"])
    assert stages["select"]["out"] == 8  # 4 from each source
    per = stages["select"]["select"]["selected_per_source"]
    assert per == {"a.jsonl": {"ranked": 35, "selected": 4}, "b.jsonl": {"ranked": 35, "selected": 4}}
    kept = _lines(tmp_path / "out" / "data" / "alpaca.jsonl")
    assert all("flag_refusal" in r["meta"]["scores"] for r in kept)


# -- the recipe: a run-wide stage is one entry in passes.RUN_STAGES ------------------------------------------

class EveryNth(BaseModel):
    n: int = 3


def keep_every_nth(stream: passes.Stream, config: EveryNth, layout) -> passes.Pass:
    """Keeps every n-th record that reaches it; the others are filtered with the reason `not every nth`."""
    import numpy as np

    from instructgen.formats import source_row

    log = RunLog("every-nth", str(layout.rejects("every-nth")))
    kept = np.zeros(len(stream.spools), dtype=bool)
    seen = 0
    for k, conv, at in stream.fates():
        if at >= 0:
            continue
        log.took_in()
        if seen % config.n == 0:
            kept[k] = True
            log.emitted()
        else:
            log.drop(conv.origin, "not every nth", source_row(conv), kind="filtered")
        seen += 1
    log.close()
    return passes.Pass("every-nth", kept, None, log)


def test_a_new_run_wide_stage_is_one_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(passes, "RUN_STAGES", [*passes.RUN_STAGES,
                                               passes.RunStage("every-nth", lambda _c: EveryNth(), keep_every_nth)])
    data = tmp_path / "data.jsonl"
    _data(data, n=30)
    cfg = _config(tmp_path, data, 'enabled = true\njudge = "signals"')
    with OutputFolder(tmp_path / "out") as layout:
        summary = run(load_config(cfg), layout, announce=lambda _m: None)
    stages = {s["stage"]: s for s in summary.stages}
    assert [s["stage"] for s in summary.stages] == ["read", "dedup", "score", "every-nth", "write:alpaca",
                                                    "write:sharegpt"]
    _assert_chain(stages, ["read", "dedup", "score", "every-nth", "write:alpaca"])
    assert stages["every-nth"]["out"] == 10 and len(_lines(tmp_path / "out" / "rejects" / "every-nth.jsonl")) == 20
    written = _lines(tmp_path / "out" / "data" / "alpaca.jsonl")
    assert [r["instruction"] for r in written] == [json.loads(line)["instruction"] for line in
                                                   data.read_text(encoding="utf-8").splitlines()[:30:3]]
    assert all("output_length" in r["meta"]["scores"] for r in written)  # score's records reach the later stage
