"""The pipeline as Prefect flows: config errors, the bundled example end to end, runner determinism,
the generation cache, and a scheduled deployment on a real `prefect server start`.

Flows really run: a session-scoped `prefect_test_harness` (a temporary local Prefect server, started once).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from instructgen.pipeline.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent


# -- fixtures ---------------------------------------------------------------------------------------------

WORDS = ("river mountain system record signal market garden planet engine winter summer language music "
         "history science number letter window station bridge forest ocean travel").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_dataset(path: Path, n: int = 240, seed: int = 7) -> dict[str, int]:
    """Alpaca rows with known exact copies, near copies (one word changed), Chinese rows and broken lines."""
    rng = random.Random(seed)
    rows: list[str] = []
    base = []
    for i in range(n):
        rec = {"instruction": f"Describe {_sentence(rng, 12)}", "input": "", "output": _sentence(rng, 30)}
        base.append(rec)
        rows.append(json.dumps(rec, ensure_ascii=False))
    known = {"exact": 0, "near": 0, "broken": 0}
    for i in range(0, n, 12):
        rows.append(json.dumps(base[i], ensure_ascii=False))
        known["exact"] += 1
        near = dict(base[i + 1])
        words = near["output"].split()
        words[3] = "zebra"
        near["output"] = " ".join(words)
        rows.append(json.dumps(near, ensure_ascii=False))
        known["near"] += 1
    for i in range(10):
        rows.append(json.dumps({"instruction": f"请用{i + 3}句话介绍一下{['长城', '黄河', '熊猫', '茶叶', '丝绸'][i % 5]}的历史和文化意义",
                                "input": "", "output": "它有很长的历史。" * (i + 2) + f"这是第{i}个回答，内容比较详细。"},
                               ensure_ascii=False))
    rows.insert(5, '{"instruction": "broken json')
    rows.insert(50, '{"question": "wrong fields", "answer": "x"}')
    known["broken"] = 2
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return known


def write_config(folder: Path, data: str, **overrides: str) -> Path:
    sections = {
        "pipeline": 'formats = ["alpaca", "sharegpt"]\nshard_size = 50',
        "filter": "enabled = true",
        "dedup": "enabled = true",
        "publish": "enabled = false",
    }
    sections.update(overrides)
    text = "\n".join(f"[{k}]\n{v}\n" for k, v in sections.items())
    text += f'\n[[sources]]\npath = "{data}"\nformat = "alpaca"\n'
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def stages_of(out: Path) -> dict[str, dict]:
    return {s["stage"]: s for s in orjson.loads((out / "stats.json").read_bytes())["stages"]}


def lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def assert_reconciles(out: Path, formats: list[str]) -> dict[str, dict]:
    stages = stages_of(out)
    for s in stages.values():
        assert s["in"] == s["out"] + s["rejected"] + s["filtered"] + s["duplicates"], s
        assert s["balanced"] is True
        dropped = s["rejected"] + s["filtered"] + s["duplicates"]
        if dropped:
            assert lines(Path(s["rejects_file"])) == dropped, s["stage"]
    order = [name for name in ("generate", "read", "filter", "dedup", "score", "select") if name in stages]
    for before, after in zip(order, order[1:]):
        if (before, after) != ("generate", "read"):
            assert stages[before]["out"] == stages[after]["in"], (before, after)
    for fmt in formats:
        w = stages[f"write:{fmt}"]
        assert w["in"] == stages[order[-1]]["out"]
        assert lines(out / "data" / f"{fmt}.jsonl") == w["out"]
    return stages


# -- config -----------------------------------------------------------------------------------------------

def test_bundled_example_config_is_valid_and_offline():
    cfg = load_config(None)
    assert cfg.generate.enabled is False  # the README's main-job command needs no API key
    assert cfg.publish.enabled is False or cfg.publish.dry_run is True  # and no network
    assert cfg.sources and all(s.path is not None and s.path.is_absolute() for s in cfg.sources)


def test_a_dataset_source_refuses_the_keys_it_would_ignore(tmp_path):
    """`format`, `columns` and `glob` are read for `path` sources only: beside `dataset` they are an error
    naming the file and the line, not silently dropped."""
    text = ('[[sources]]\npath = "a.jsonl"\nformat = "alpaca"\n\n[[sources]]\ndataset = "a/b"\n'
            'columns = {instruction = "q"}\nformat = "alpaca"\n')
    with pytest.raises(ConfigError) as e:
        parse_config(text, tmp_path / "p.toml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'p.toml'}:7: sources[1]: `format` and `columns` apply to `path` sources only")
    assert "instructgen download a/b -o FILE" in msg
    with pytest.raises(ConfigError, match=r"p.toml:3: sources\[0\]: `glob` applies"):
        parse_config('[[sources]]\ndataset = "a/b"\nglob = "*.json"\n', tmp_path / "p.toml")
    assert parse_config('[[sources]]\ndataset = "a/b"\nrevision = "main"\n', tmp_path / "p.toml").sources[0].dataset

def test_config_errors_name_the_line(tmp_path):
    text = ('[pipeline]\nname = "x"\nrunner = "spark"\n\n[[sources]]\npath = "a.jsonl"\n\n'
            '[[sources]]\ndataset = "a/b"\npath = "b.jsonl"\n\n[dedup]\nthreshold = 1.5\nshingel = "auto"\n')
    with pytest.raises(ConfigError) as e:
        parse_config(text, tmp_path / "p.toml")
    msg = str(e.value)
    assert f"{tmp_path / 'p.toml'}:3: pipeline.runner: unknown runner 'spark'" in msg
    assert "p.toml:8: sources[1]: give exactly one of `path` or `dataset`" in msg
    assert "p.toml:13: dedup.threshold:" in msg
    assert "p.toml:14: dedup.shingel: unknown key (allowed: threshold, num_perm, shingle" in msg


def test_config_toml_syntax_error_has_line(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.toml:3: invalid TOML"):
        parse_config('[pipeline]\nname = "x"\nformats = ["alpaca",,]\n', tmp_path / "p.toml")


def test_config_relative_paths_follow_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg_path = write_config(tmp_path / "sub", "data.jsonl")
    cfg = load_config(cfg_path)
    assert cfg.sources[0].path == (tmp_path / "sub" / "data.jsonl").resolve()


# -- flows ------------------------------------------------------------------------------------------------

def test_example_pipeline_end_to_end(prefect, tmp_path):
    from instructgen_flows.pipeline import run_pipeline

    cfg = load_config(None)
    out = tmp_path / "out"
    result = run_pipeline(None, str(out))
    assert result["balanced"]
    stages = assert_reconciles(out, cfg.pipeline.formats)
    assert stages["read"]["in"] > 0 and stages["write:alpaca"]["out"] > 0
    assert (out / "report.md").exists() and (out / "report.html").exists()
    if cfg.publish.enabled:
        assert (out / "hub" / "README.md").exists()

    from prefect.artifacts import Artifact

    table = Artifact.get("instructgen-stage-counts")
    assert table is not None and table.type == "table"
    assert {row["stage"] for row in json.loads(table.data)} == set(stages)
    report = Artifact.get("instructgen-report")
    assert report is not None and report.type == "markdown" and "## Records through the stages" in report.data


def test_curate_counts_known_duplicates_and_rejects(prefect, tmp_path):
    from instructgen_flows.pipeline import run_pipeline

    known = write_dataset(tmp_path / "data.jsonl")
    cfg = write_config(tmp_path, str(tmp_path / "data.jsonl"), filter="enabled = false")
    out = tmp_path / "out"
    run_pipeline(str(cfg), str(out))
    stages = assert_reconciles(out, ["alpaca", "sharegpt"])
    assert stages["read"]["rejected"] == known["broken"]
    reasons = {r["reason"]: r["count"] for r in stages["dedup"]["reasons"]}
    assert reasons.get("exact duplicate", 0) >= known["exact"]
    assert reasons.get("near duplicate", 0) >= known["near"]
    clusters = [orjson.loads(line) for line in (out / "clusters.jsonl").read_bytes().splitlines()]
    assert len(clusters) == stages["dedup"]["duplicates"]
    assert all(c["similarity"] >= 0.7 for c in clusters)


def test_rerun_hits_the_generation_cache(prefect, tmp_path):
    from llm_double import LLMDouble  # the generate helper's test double of a remote chat model

    from instructgen_flows.pipeline import run_pipeline

    write_dataset(tmp_path / "data.jsonl", n=20)
    out = tmp_path / "out"
    with LLMDouble() as double:
        cfg = write_config(tmp_path, str(tmp_path / "data.jsonl"), filter="enabled = false", generate=(
            f'enabled = true\nseed_tasks = "{REPO / "data" / "seeds" / "seed_tasks_en.jsonl"}"\n'
            f'num_instructions = 12\nbase_url = "{double.base_url}"\nmodel = "double"\nconcurrency = 4'))
        run_pipeline(str(cfg), str(out))
        paid = double.total_hits
        generated = (out / "generated" / "generated.jsonl").read_bytes()
        stats = orjson.loads((out / "stats.json").read_bytes())
        assert paid > 0 and stats["generation"]["reused_earlier_result"] is False
        assert stages_of(out)["generate"]["out"] == lines(out / "generated" / "generated.jsonl") >= 12
        assert_reconciles(out, ["alpaca", "sharegpt"])

        run_pipeline(str(cfg), str(out))  # unchanged rerun: Prefect's task cache, no request at all
        assert double.total_hits == paid
        assert orjson.loads((out / "stats.json").read_bytes())["generation"]["reused_earlier_result"] is True
        assert (out / "generated" / "generated.jsonl").read_bytes() == generated
        assert_reconciles(out, ["alpaca", "sharegpt"])

        for cached in (out / ".cache").glob("generate-*/generated.jsonl"):
            cached.unlink()  # the remembered result's file is gone: the task reruns,
        run_pipeline(str(cfg), str(out))  # and the stage's request cache answers every request
        assert double.total_hits == paid
        assert (out / "generated" / "generated.jsonl").read_bytes() == generated


def test_run_reads_a_published_dataset_and_pushes_to_the_hub(tmp_path):
    """`instructgen run` as a user runs it (a subprocess, Prefect's temporary server), against the Hub test double."""
    import secrets

    from hub_double import HubDouble  # the hub helper's test double of the Hugging Face Hub

    token = "hf_" + secrets.token_hex(16)
    write_dataset(tmp_path / "data.jsonl", n=30)
    with HubDouble(tmp_path / "hub-store", tokens={token: "tester"}) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "PREFECT_"))}
        env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN=token, PREFECT_HOME=str(tmp_path / "prefect-home"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        src = REPO / "data" / "samples" / "sharegpt.jsonl"
        pushed = subprocess.run([sys.executable, "-m", "instructgen.cli", "push", str(src), "--repo", "tester/source",
                                 "--formats", "sharegpt"], env=env, capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stderr
        cfg = write_config(tmp_path, str(tmp_path / "data.jsonl"), filter="enabled = false",
                           publish='enabled = true\nrepo = "tester/curated"\ndry_run = false')
        with open(cfg, "a", encoding="utf-8") as fh:
            fh.write('\n[[sources]]\ndataset = "tester/source"\n')
        out = tmp_path / "out"
        run = subprocess.run([sys.executable, "-m", "instructgen.cli", "run", str(cfg), "-o", str(out)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert token not in run.stdout + run.stderr
        stats = orjson.loads((out / "stats.json").read_bytes())
        stages = assert_reconciles(out, ["alpaca", "sharegpt"])
        assert stages["download:tester/source"]["out"] == lines(src)
        published = [s for s in stats["sources"] if "repo" in s]
        assert [s["repo"] for s in published] == ["tester/source"] and len(published[0]["revision"]) == 40
        local = [s for s in stats["sources"] if "path" in s]
        assert [s["path"] for s in local] == ["data.jsonl"] and len(local[0]["sha256"]) == 64
        assert stats["hub"]["repo"] == "tester/curated" and stats["hub"]["changed"] is True
        assert stats["hub"]["commit_url"] and stats["hub"]["commit_sha"] in stats["hub"]["commit_url"]
        assert stats["hub"]["commit_url"] in (out / "report.html").read_text(encoding="utf-8")
        for path in out.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path


def _outputs(out: Path) -> dict[str, bytes]:
    files = sorted(p for p in out.rglob("*.jsonl"))
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def test_runners_give_byte_identical_outputs(prefect, tmp_path):
    """threads, a Dask LocalCluster (2 workers, in-process) and a process pool, each with another shard size."""
    from instructgen_flows.pipeline import run_pipeline

    write_dataset(tmp_path / "data.jsonl", n=400)
    runs = {"threads": (37, None), "dask": (101, {"n_workers": 2, "processes": False, "threads_per_worker": 1}),
            "processes": (64, None)}
    outputs, stats = {}, {}
    for runner, (shard_size, options) in runs.items():
        folder = tmp_path / runner
        folder.mkdir()
        cfg = write_config(folder, str(tmp_path / "data.jsonl"),
                           pipeline=f'formats = ["alpaca", "sharegpt"]\nshard_size = {shard_size}')
        run_pipeline(str(cfg), str(folder / "out"), runner=runner, runner_options=options)
        outputs[runner] = _outputs(folder / "out")
        strip = lambda s: {k: v for k, v in s.items() if k != "rejects_file"}  # noqa: E731
        stats[runner] = {k: strip(v) for k, v in stages_of(folder / "out").items()}
    base = outputs["threads"]
    assert "data/alpaca.jsonl" in base and "clusters.jsonl" in base and "rejects/filter.jsonl" in base
    for runner in ("dask", "processes"):
        assert outputs[runner].keys() == base.keys()
        for name in base:
            assert outputs[runner][name] == base[name], (runner, name)
        assert stats[runner] == stats["threads"]


def test_ray_runner_missing_says_how_to_install():
    from instructgen.errors import InstructgenError
    from instructgen_flows.runners import make_task_runner

    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        with pytest.raises(InstructgenError, match=r"pip install 'instructgen\[ray\]'"):
            make_task_runner("ray")
    else:
        pytest.skip("prefect-ray is installed here")


# -- a scheduled deployment on a real server ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _wait_for(check, seconds: float, step: float = 0.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(step)
    return None


def _stop(proc: subprocess.Popen, sig_first=None) -> None:
    if proc.poll() is not None:
        return
    if sig_first is not None:
        proc.send_signal(sig_first)
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def test_served_deployment_runs_on_a_real_server(tmp_path):
    import signal

    prefect_bin = shutil.which("prefect") or pytest.skip("the prefect command is not on PATH")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}  # the served runner looks for due runs every second, not 10
    server_log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    serve = serve_log = None
    try:
        if not _wait_for(lambda: _get_json(f"{api}/health") is True, 120):
            pytest.skip(f"`prefect server start` did not come up on 127.0.0.1:{port} within 120 s: "
                        + (tmp_path / "server.log").read_text(errors="replace")[-500:])
        write_dataset(tmp_path / "data.jsonl", n=60)
        cfg = write_config(tmp_path, str(tmp_path / "data.jsonl"))
        out = tmp_path / "served-out"
        serve_log = open(tmp_path / "serve.log", "wb")
        serve = subprocess.Popen([sys.executable, "-m", "instructgen.cli", "serve", str(cfg), "--cron", "0 3 * * *",
                                  "--name", "test", "-o", str(out)], env=env, stdout=serve_log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        deployment = _wait_for(lambda: _get_json(f"{api}/deployments/name/instructgen-pipeline/test"), 90)
        assert deployment, (tmp_path / "serve.log").read_text(errors="replace")[-2000:]
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
        assert deployment["global_concurrency_limit"]["limit"] == 1
        run = subprocess.run([prefect_bin, "deployment", "run", "instructgen-pipeline/test", "--watch",
                              "--watch-interval", "1", "--watch-timeout", "240"],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr + (tmp_path / "serve.log").read_text(errors="replace")
        assert "Completed" in run.stdout
        assert_reconciles(out, ["alpaca", "sharegpt"])

        # prefect.yaml declares the same deployment for a worker: it deploys, with the schedule and the limit
        pool = subprocess.run([prefect_bin, "work-pool", "create", "instructgen", "--type", "process"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = subprocess.run([prefect_bin, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=180)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        nightly = _get_json(f"{api}/deployments/name/instructgen-pipeline/nightly")
        assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 3 * * *"]
        assert nightly["global_concurrency_limit"]["limit"] == 1
        assert nightly["entrypoint"] == "flows/pipeline.py:pipeline_flow"
    finally:
        if serve is not None:
            _stop(serve, signal.SIGINT)
        _stop(server, signal.SIGINT)
        for fh in (serve_log, server_log):
            if fh is not None:
                fh.close()
