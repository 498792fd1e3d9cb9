"""A growing generation ([generate] grow = true): each pipeline run adds one round seeded by the rounds before it,
against the LLM test double on 127.0.0.1, through the plain pipeline (the flow runs the same `pipeline.run`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from conftest import REPO

from instructgen.errors import InstructgenError
from instructgen.generate import run as generate_run
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline.config import ConfigError, load_config
from instructgen.pipeline.remote import generation_key, lineage_key
from llm_double import LLMDouble

SEEDS = REPO / "data/seeds/seed_tasks_en.jsonl"


def config(tmp_path: Path, double: LLMDouble, mode: str = "alpaca", extra: str = "") -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(f'[pipeline]\nformats = ["alpaca"]\n[filter]\nenabled = false\n[generate]\nenabled = true\n'
                    f'mode = "{mode}"\nseed_tasks = "{SEEDS}"\nnum_instructions = 5\nbase_url = "{double.base_url}"\n'
                    f'model = "double"\nconcurrency = 4\ngrow = true\ngrow_max_rounds = 3\n{extra}\n',
                    encoding="utf-8")
    return path


def run_once(out: Path, cfg: Path, fail_after: bool = False):
    with OutputFolder(out) as layout:
        summary = run(load_config(cfg), layout, announce=lambda _m: None)
        if fail_after:
            raise RuntimeError("the Hub was down")  # after generating: this run publishes nothing
    return summary


def rounds_of(out: Path) -> list[dict]:
    return orjson.loads((out / "generated" / "rounds.json").read_bytes())["rounds"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def seeds_asked(monkeypatch):
    """The seed files each round's generation was given."""
    asked: list[list[str]] = []
    real = generate_run.generate

    def spy(config, *args, **kwargs):
        asked.append([str(p) for p in config.seed_tasks])
        return real(config, *args, **kwargs)
    monkeypatch.setattr(generate_run, "generate", spy)
    return asked


def test_each_run_adds_a_round_seeded_by_the_earlier_ones_up_to_the_cap(tmp_path, seeds_asked):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double)
        paid = []
        for _ in range(4):
            summary = run_once(out, cfg)
            assert summary.balanced
            paid.append(double.total_hits)
        assert set(double.hits.values()) == {1}  # no request paid twice over four runs
    assert paid[3] == paid[2] > paid[1] > paid[0] > 0  # the fourth run is past the cap: nothing sent
    table = rounds_of(out)
    assert [r["round"] for r in table] == [1, 2, 3] and all(r["complete"] for r in table)
    assert [r["made_this_run"] for r in table] == [False, False, False]
    stats = orjson.loads((out / "stats.json").read_bytes())
    assert "grow_max_rounds 3" in stats["generation"]["grow"]["stopped_growing"]
    # round r was seeded by the seed file and every earlier round's records
    assert len(seeds_asked) == 3 and seeds_asked[0] == [str(SEEDS)]
    assert [len(s) for s in seeds_asked] == [1, 2, 3] and all(s[0] == str(SEEDS) for s in seeds_asked)
    assert "round-0001" in seeds_asked[1][1] and "round-0002" in seeds_asked[2][2]
    # each record says which round made it, and rounds.json says which lines each round holds
    pool = rows(out / "generated" / "generated.jsonl")
    for r in table:
        first, last = r["lines"]
        assert {row["meta"]["generation_round"] for row in pool[first - 1:last]} == {r["round"]}
    assert len(pool) == sum(r["records"] for r in table) == 15
    assert {row["meta"]["generation_round"] for row in rows(out / "data" / "alpaca.jsonl")} == {1, 2, 3}
    stages = {s["stage"]: s for s in stats["stages"]}
    assert sum(stages[f"generate round {n}"]["out"] for n in (1, 2, 3)) == stages["read"]["in"] == 15
    instructions = [row["instruction"] for row in pool]
    assert len(set(instructions)) == len(instructions)  # later rounds were filtered against earlier ones


def test_a_run_that_failed_after_generating_is_rerun_with_the_round_it_made(tmp_path):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double)
        run_once(out, cfg)
        with pytest.raises(RuntimeError):
            run_once(out, cfg, fail_after=True)  # made round 2, published nothing
        assert [r["round"] for r in rounds_of(out)] == [1]
        paid = double.total_hits
        run_once(out, cfg)
        assert double.total_hits == paid  # round 2 came from the cache: no third round, nothing paid
    assert [(r["round"], r["made_this_run"]) for r in rounds_of(out)] == [(1, False), (2, True)]


def test_evol_deepens_each_roots_latest_evolution_across_runs(tmp_path):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double, mode="evol", extra="rounds = 1")
        run_once(out, cfg)
        run_once(out, cfg)
    pool = rows(out / "generated" / "generated.jsonl")
    first = {row["meta"]["evol"]["root"]: row["instruction"] for row in pool if row["meta"]["generation_round"] == 1}
    seeds = rows(next((out / ".cache").glob("grow-*/round-0002/seeds.jsonl")))
    for root, evolved in first.items():
        assert seeds[int(root.split()[1])]["instruction"] == evolved  # the evolution replaced its seed
    second = [row for row in pool if row["meta"]["generation_round"] == 2]
    assert second and all(row["meta"]["evol"]["parent"] in {s["instruction"] for s in seeds} for row in second)


def test_a_tampered_round_is_made_again_from_the_request_cache_and_the_planted_rows_never_reach_the_pool(tmp_path):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double)
        run_once(out, cfg)
        run_once(out, cfg)
        paid = double.total_hits
        round1 = next((out / ".cache").glob("grow-*/round-0001"))
        with open(round1 / "generated.jsonl", "a", encoding="utf-8") as fh:
            fh.write('{"instruction": "PLANTED", "input": "", "output": "obey me"}\n')
        run_once(out, cfg)  # round 1 is made again (free), and this run's round is that one
        assert double.total_hits == paid
    pool = (out / "generated" / "generated.jsonl").read_text(encoding="utf-8")
    assert "PLANTED" not in pool and "PLANTED" not in (out / "data" / "alpaca.jsonl").read_text(encoding="utf-8")
    assert [r["round"] for r in rounds_of(out)] == [1]


def test_a_planted_rounds_file_makes_at_most_one_round(tmp_path):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double, extra="grow_max_rounds = 50")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("grow_max_rounds = 3\n", ""), encoding="utf-8")
        run_once(out, cfg)
        state = orjson.loads((out / "generated" / "rounds.json").read_bytes())
        state["rounds"] = [{"round": n, "complete": True} for n in range(1, 41)]
        (out / "generated" / "rounds.json").write_bytes(orjson.dumps(state))
        run_once(out, cfg)
    assert [r["round"] for r in rounds_of(out)] == [1, 2]


def test_links_in_the_kept_folders_are_refused_or_never_followed(tmp_path):
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double)
        run_once(out, cfg)
        grow_folder = next((out / ".cache").glob("grow-*"))
        # a round folder swapped for a link: not read, removed as a link, the round made again
        round1 = grow_folder / "round-0001"
        (elsewhere / "round").mkdir()
        os.rename(round1, elsewhere / "round-copy")
        round1.symlink_to(elsewhere / "round-copy")
        run_once(out, cfg)
        assert not round1.is_symlink() and (elsewhere / "round-copy" / "generated.jsonl").exists()
        # the rounds file of the last run as a link: refused in one line
        rounds_file = out / "generated" / "rounds.json"
        rounds_file.unlink()
        rounds_file.symlink_to(elsewhere / "round-copy" / "round.json")
        with pytest.raises(InstructgenError, match="rounds.json: not a rounds file"):
            run_once(out, cfg)
        rounds_file.unlink()
        # the pool's folder as a link: refused
        os.rename(grow_folder, elsewhere / "grow")
        grow_folder.symlink_to(elsewhere / "grow")
        with pytest.raises(InstructgenError, match="is a symbolic link"):
            run_once(out, cfg)


def test_grow_needs_a_mode_whose_records_seed_the_next_round_and_its_key_is_never_replayed(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double, mode="pairs")
        with pytest.raises(ConfigError, match="grow adds rounds"):
            load_config(cfg)
        settings = load_config(config(tmp_path, double)).generate
    assert generation_key(settings) != generation_key(settings)  # an orchestrator's cache never skips a round
    assert lineage_key(settings) == lineage_key(settings.model_copy(update={"grow_max_rounds": 9}))


def test_a_round_a_spending_cap_stopped_is_finished_by_later_runs_and_the_cap_on_records_cuts_the_last(tmp_path):
    out = tmp_path / "out"
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double, extra="max_tokens = 300\ngrow_max_records = 40\nconcurrency = 1")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("num_instructions = 5", "num_instructions = 30")
                       .replace("concurrency = 4\n", ""), encoding="utf-8")
        run_once(out, cfg)
        first = rounds_of(out)
        assert [r["complete"] for r in first] == [False] and first[0]["stop_reason"].startswith("budget")
        for _ in range(8):  # each run pays for one more answer or so
            if len(rounds_of(out)) == 2:
                break
            run_once(out, cfg)
        assert set(double.hits.values()) == {1}  # continuing a stopped round paid nothing twice
    table = rounds_of(out)
    assert [r["round"] for r in table] == [1, 2] and table[0]["complete"] and table[0]["records"] == 30
    assert 0 < table[1]["records"] <= 10  # cut to fit grow_max_records
    pool = rows(out / "generated" / "generated.jsonl")
    assert len(pool) == sum(r["records"] for r in table) <= 40


def test_instructgen_run_under_prefect_grows_a_round_per_run_and_keeps_a_key_in_the_url_out_of_everything(tmp_path):
    """The real flow, as a user runs it twice (Prefect's temporary server): its task cache never replays an
    earlier round, and a key inside the endpoint's URL is in no stored run, output or rounds file."""
    import subprocess
    import sys

    key = "sk-in-url-" + os.urandom(8).hex()
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "OPENAI_API_KEY"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double)
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("http://", f"http://alice:{key}@"), encoding="utf-8")
        hits = []
        for _ in range(2):
            result = subprocess.run([sys.executable, "-m", "instructgen.cli", "run", str(cfg), "-o", "out"],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
            assert result.returncode == 0, result.stderr[-3000:]
            assert key not in result.stdout + result.stderr
            hits.append(double.total_hits)
    assert 0 < hits[0] < hits[1] and set(double.hits.values()) == {1}
    assert [(r["round"], r["made_this_run"]) for r in rounds_of(tmp_path / "out")] == [(1, False), (2, True)]
    files = [p for p in [*home.rglob("*"), *(tmp_path / "out").rglob("*")] if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in files)
    assert not [p for p in files if key.encode() in p.read_bytes()]


def test_planted_seeds_and_files_a_round_did_not_write_are_never_used(tmp_path):
    out = tmp_path / "out"
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"secret": "VICTIM"}\n', encoding="utf-8")
    with LLMDouble(planted_rate=0.0) as double:
        cfg = config(tmp_path, double, mode="evol", extra="rounds = 1")
        run_once(out, cfg)
        run_once(out, cfg)
        grow_folder = next((out / ".cache").glob("grow-*"))
        seeds = grow_folder / "round-0002" / "seeds.jsonl"
        seeds.write_text(seeds.read_text(encoding="utf-8").replace('"instruction":"', '"instruction":"PLANTED ', 1),
                         encoding="utf-8")
        (grow_folder / "round-0001" / "failures.jsonl").symlink_to(victim)  # round 1 wrote no failures file
        before = (out / "generated" / "generated.jsonl").read_bytes()
        run_once(out, cfg)  # round 2 is made again from the request cache; round 1's planted link is not read
        assert set(double.hits.values()) == {1}  # nothing paid twice (a request or two more may start in flight)
    assert [r["round"] for r in rounds_of(out)] == [1, 2]
    assert (out / "generated" / "generated.jsonl").read_bytes() == before  # the same decisions
    kept = [p.read_text(encoding="utf-8") for p in [*out.rglob("*.jsonl"), *out.rglob("*.json")] if p.is_file()
            and not p.is_symlink()]
    assert not [text for text in kept if "PLANTED" in text or "VICTIM" in text]
    assert victim.read_text(encoding="utf-8") == '{"secret": "VICTIM"}\n'
