"""`instructgen push` / `instructgen download` against the Hub test double (tests/hub_double.py).

Every CLI run is a real subprocess with HF_ENDPOINT pointing at the double on 127.0.0.1 and Xet
disabled, so huggingface_hub reads its settings at import exactly as it does for a user. Every
run's stdout and stderr are checked for the token.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
import yaml

from hub_double import HubDouble

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
TOKEN = "hf_" + secrets.token_hex(16)


# -- fixtures and helpers -------------------------------------------------------------------------

def sample(tmp_path: Path, name: str, fallback: list[dict]) -> Path:
    """data/samples/<name> when another helper has written it, else the fallback rows written here."""
    path = SAMPLES / name
    if path.exists():
        return path
    out = tmp_path / name
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in fallback))
    return out


ALPACA = [
    {"instruction": "Give three tips for staying focused.", "input": "", "output": "Phone away; short blocks; one goal."},
    {"instruction": "Translate into French.", "input": "The library opens at nine.", "output": "La bibliothèque ouvre à neuf heures."},
    {"instruction": "用一句话解释什么是光合作用。", "input": "", "output": "植物利用光能把二氧化碳和水转化为有机物。"},
]
SHAREGPT = [
    {"id": "s-1", "conversations": [{"from": "human", "value": "Capital of Canada?"}, {"from": "gpt", "value": "Ottawa."}]},
    {"id": "s-2", "system": "你是一位老师。", "conversations": [
        {"from": "human", "value": "写一句诗。"}, {"from": "gpt", "value": "春风又绿江南岸。"},
        {"from": "human", "value": "谁写的？"}, {"from": "gpt", "value": "王安石。"}]},
]


@pytest.fixture
def hub(tmp_path):
    with HubDouble(tmp_path / "hub-store", tokens={TOKEN: "tester"}) as double:
        yield double


@pytest.fixture
def inputs(tmp_path):
    return [sample(tmp_path, "alpaca.jsonl", ALPACA), sample(tmp_path, "sharegpt.jsonl", SHAREGPT)]


def hub_env(tmp_path: Path, endpoint: str, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO / "src"))
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env


def cli(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "instructgen.cli", *map(str, args)], env=env, cwd=cwd,
                       capture_output=True, timeout=300)
    for stream in (r.stdout, r.stderr):
        assert TOKEN.encode() not in stream, "the token leaked into the output"
    r.out, r.err = r.stdout.decode(), r.stderr.decode()
    return r


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.out}\nstderr:\n{r.err}"
    return r


def rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def converted(env, tmp_path: Path, inputs: list[Path], fmt: str) -> list[dict]:
    """What `instructgen convert` makes of the inputs: the records a download must give back. A top-level
    null is a key convert fills so every JSONL row has the same keys (absent in the row it was added to)."""
    out = tmp_path / f"expected.{fmt}.jsonl"
    ok(cli(env, "convert", *inputs, "--to", fmt, "-o", out))
    return [{k: v for k, v in row.items() if v is not None} for row in rows(out)]


def push(env, inputs, repo, *more, cwd=None):
    return cli(env, "push", *inputs, "--repo", repo, *more, cwd=cwd)


def commit_of(stdout: str) -> str:
    found = re.findall(r"\b[0-9a-f]{40}\b", stdout)
    assert found, stdout
    return found[0]


# -- the tests ------------------------------------------------------------------------------------

def test_push_then_download_round_trip_two_configs(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    r = ok(push(env, inputs, "tester/rt", "--formats", "alpaca,sharegpt", "--license", "cc-by-4.0", cwd=tmp_path))
    sha = commit_of(r.out)
    assert sha == hub.head("tester/rt")
    assert {"alpaca/train-00000-of-00001.parquet", "sharegpt/train-00000-of-00001.parquet", "README.md"} <= set(
        hub.commits("tester/rt")[sha]["files"])
    assert hub.requests_of("lfs_upload"), "Parquet shards must go through the LFS upload path"
    for fmt in ("alpaca", "sharegpt"):
        out = tmp_path / f"got.{fmt}.jsonl"
        d = ok(cli(env, "download", "tester/rt", "--config", fmt, "--revision", sha, "--to", fmt, "-o", out))
        assert rows(out) == converted(env, tmp_path, inputs, fmt), fmt
        assert f"detected format {fmt}" in d.err
        stats = json.loads((tmp_path / f"got.{fmt}.stats.json").read_text())
        assert stats["source"]["revision"] == sha
        assert stats["source"]["license"] == "cc-by-4.0"
        assert stats["stages"][0]["in"] == stats["stages"][0]["out"] == len(rows(out))


def test_card_has_metadata_examples_and_no_token(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({
        "stages": [{"stage": "dedup", "in": 10, "out": 7, "rejected": 0, "filtered": 1, "duplicates": 2}],
        "sources": [{"repo": "tatsu-lab/alpaca", "revision": "abc1234", "license": "cc-by-nc-4.0"}],
        "generation": {"model": "gpt-4o-mini", "temperature": 0.7},
        "dedup": {"method": "minhash", "threshold": 0.7},
    }))
    ok(push(env, inputs, "tester/card", "--formats", "sharegpt,moss", "--stats", stats, "--license", "cc-by-nc-4.0",
            cwd=tmp_path))
    card = hub.file_bytes("tester/card", "README.md")
    assert TOKEN.encode() not in card
    text = card.decode()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-nc-4.0"
    assert set(meta["language"]) == {"en", "zh"}
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in meta["configs"]] == ["sharegpt", "moss"]
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "moss/train-*"}]
    for needle in ("tatsu-lab/alpaca", "abc1234", "gpt-4o-mini", "threshold", "| dedup | 10 | 7 | 0 | 1 | 2 |",
                   "Example 2:", 'load_dataset("tester/card", "moss", revision=', "`conversations`"):
        assert needle in text, needle
    for entry in hub.commits("tester/card")[hub.head("tester/card")]["files"]:
        assert TOKEN.encode() not in hub.file_bytes("tester/card", entry)
    # the card's "how to load it" works as written: datasets.load_dataset over HTTP, pinned to the commit
    script = (
        "import datasets, json, sys\n"
        "ds = datasets.load_dataset('tester/card', 'moss', split='train', revision=sys.argv[1])\n"
        "print(json.dumps([{k: v for k, v in r.items() if v is not None} for r in ds], ensure_ascii=False))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, hub.head("tester/card")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    expected = converted(env, tmp_path, inputs, "moss")
    loaded = json.loads(r.stdout.splitlines()[-1])
    # columns whose shape varies (MOSS `chat`) are JSON text, as the card's field table says
    assert "| `chat` | string (JSON text) |" in text
    assert [{k: json.loads(v) if isinstance(v, str) and not isinstance(want.get(k), str) else v
             for k, v in row.items()} for row, want in zip(loaded, expected)] == expected


def test_second_push_of_same_data_makes_no_commit(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    first = commit_of(ok(push(env, inputs, "tester/idem", "--formats", "moss,sharegpt", cwd=tmp_path)).out)
    n_commits = len(hub.commits("tester/idem"))
    n_posts = len(hub.requests_of("commit"))
    again = ok(push(env, inputs, "tester/idem", "--formats", "moss,sharegpt", cwd=tmp_path))
    assert again.out.startswith("unchanged:") and first in again.out
    assert len(hub.commits("tester/idem")) == n_commits and len(hub.requests_of("commit")) == n_posts
    # one more record is a change: a new commit on top of the first
    more = tmp_path / "more.jsonl"
    more.write_bytes(orjson.dumps({"instruction": "Say hi.", "input": "", "output": "Hi!"}) + b"\n")
    third = commit_of(ok(push(env, [*inputs, more], "tester/idem", "--formats", "moss,sharegpt", cwd=tmp_path)).out)
    assert third != first and hub.commits("tester/idem")[third]["parent"] == first


def test_create_pr_leaves_main_alone(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    main_sha = commit_of(ok(push(env, inputs[:1], "tester/pr", "--formats", "alpaca", cwd=tmp_path)).out)
    r = ok(push(env, inputs, "tester/pr", "--formats", "alpaca", "--create-pr", cwd=tmp_path))
    assert "/datasets/tester/pr/discussions/1" in r.out
    assert hub.head("tester/pr") == main_sha
    pr_sha = hub.head("tester/pr", "refs/pr/1")
    assert commit_of(r.out) == pr_sha and hub.commits("tester/pr")[pr_sha]["parent"] == main_sha
    ok(cli(env, "download", "tester/pr", "--revision", "refs/pr/1", "--to", "alpaca", "-o", tmp_path / "pr.jsonl"))
    ok(cli(env, "download", "tester/pr", "--to", "alpaca", "-o", tmp_path / "main.jsonl"))
    assert rows(tmp_path / "pr.jsonl") == converted(env, tmp_path, inputs, "alpaca")
    assert rows(tmp_path / "main.jsonl") == converted(env, tmp_path, inputs[:1], "alpaca")
    assert json.loads((tmp_path / "pr.stats.json").read_text())["source"]["revision"] == pr_sha


def test_rejected_or_missing_token_is_one_clear_line(hub, inputs, tmp_path):
    wrong = hub_env(tmp_path, hub.endpoint, token="hf_" + "x" * 32)
    r = push(wrong, inputs, "tester/denied", "--formats", "alpaca", cwd=tmp_path)
    assert r.returncode == 1
    error = [line for line in r.err.splitlines() if "error" in line]
    assert len(error) == 1 and "rejected the token" in error[0] and "401" in error[0], r.err
    assert "Traceback" not in r.err and "x" * 32 not in r.err + r.out
    missing = push(hub_env(tmp_path, hub.endpoint, token=None), inputs, "tester/denied", cwd=tmp_path)
    assert missing.returncode == 1 and "no Hugging Face token: set HF_TOKEN" in missing.err
    assert not hub.requests_of("commit")
    # --token-env names another variable
    other = hub_env(tmp_path, hub.endpoint, token=None, MY_HUB_TOKEN=TOKEN)
    ok(push(other, inputs, "tester/other-env", "--formats", "alpaca", "--token-env", "MY_HUB_TOKEN", cwd=tmp_path))
    # the login cache (`hf auth login` writes HF_HOME/token)
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text(TOKEN)
    ok(push(hub_env(tmp_path, hub.endpoint, token=None), inputs, "tester/cached", "--formats", "alpaca", cwd=tmp_path))


def test_private_repo_is_only_readable_with_the_token(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    ok(push(env, inputs, "tester/secret", "--formats", "alpaca", "--private", cwd=tmp_path))
    anonymous = cli(hub_env(tmp_path, hub.endpoint, token=None), "download", "tester/secret", "-o", tmp_path / "a.jsonl")
    assert anonymous.returncode == 1 and "not found" in anonymous.err and "private" in anonymous.err
    ok(cli(env, "download", "tester/secret", "-o", tmp_path / "a.jsonl"))
    assert rows(tmp_path / "a.jsonl") == converted(env, tmp_path, inputs, "alpaca")


def test_transient_upload_failure_is_retried_within_the_run(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    hub.inject("lfs_upload", status=500, times=1, after=1)  # the second shard's PUT fails once
    hub.inject("commit", status=503, times=1)  # and the commit call once
    r = ok(push(env, inputs, "tester/flaky", "--formats", "alpaca,sharegpt,moss", cwd=tmp_path))
    statuses = [status for _, route, _, status in hub.requests if route in ("lfs_upload", "commit")]
    assert 500 in statuses and 503 in statuses
    assert "retrying" in r.err
    sha = commit_of(r.out)
    assert sha == hub.head("tester/flaky") and len(hub.commits("tester/flaky")) == 2  # initial + ours
    ok(cli(env, "download", "tester/flaky", "--config", "moss", "--to", "moss", "-o", tmp_path / "m.jsonl"))
    assert rows(tmp_path / "m.jsonl") == converted(env, tmp_path, inputs, "moss")


def test_failure_mid_upload_then_rerun_resumes(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    hub.inject("lfs_upload", status=403, times=100, after=1)  # e.g. an expired upload URL: not retried
    r = push(env, inputs, "tester/resume", "--formats", "alpaca,sharegpt,moss", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.err
    assert [line for line in r.err.splitlines() if line.startswith("instructgen push: error:")]
    initial = hub.head("tester/resume")
    assert len(hub.commits("tester/resume")) == 1, "a failed upload must not leave a partial commit"
    uploaded = {path for _, route, path, status in hub.requests if route == "lfs_upload" and status == 200}
    assert len(uploaded) == 1
    hub.faults.clear()
    before = len(hub.requests)
    sha = commit_of(ok(push(env, inputs, "tester/resume", "--formats", "alpaca,sharegpt,moss", cwd=tmp_path)).out)
    again = {path for _, route, path, status in hub.requests[before:] if route == "lfs_upload"}
    assert len(again) == 2 and not again & uploaded, "the shard uploaded before the failure is not sent again"
    assert hub.commits("tester/resume")[sha]["parent"] == initial


def test_dry_run_folder_is_deterministic_and_loads_offline(inputs, tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")  # nothing listens there
    for d in ("dry1", "dry2"):
        r = ok(push(env, inputs, "tester/dry", "--formats", "moss,sharegpt", "--dry-run", tmp_path / d, cwd=tmp_path))
        assert "nothing uploaded" in r.out
    files = sorted(p.relative_to(tmp_path / "dry1") for p in (tmp_path / "dry1").rglob("*") if p.is_file())
    assert [str(p) for p in files] == ["README.md", "moss/train-00000-of-00001.parquet",
                                       "sharegpt/train-00000-of-00001.parquet"]
    for p in files:
        data = (tmp_path / "dry1" / p).read_bytes()
        assert data == (tmp_path / "dry2" / p).read_bytes(), f"{p} differs between two identical runs"
        assert TOKEN.encode() not in data
    script = (  # columns whose shape varies are JSON text, named in each shard's metadata
        "import datasets, glob, json, sys\n"
        "import pyarrow.parquet as pq\n"
        "for config in ('moss', 'sharegpt'):\n"
        "    ds = datasets.load_dataset(sys.argv[1], config, split='train')\n"
        "    shard = glob.glob(f'{sys.argv[1]}/{config}/*.parquet')[0]\n"
        "    text = json.loads(pq.read_schema(shard).metadata[b'instructgen'])['json_columns']\n"
        "    rows = [{k: json.loads(v) if k in text else v for k, v in r.items() if v is not None} for r in ds]\n"
        "    print(json.dumps(rows, ensure_ascii=False))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "dry1")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    loaded_moss, loaded_sharegpt = (json.loads(line) for line in r.stdout.splitlines()[-2:])
    assert loaded_moss == converted(env, tmp_path, inputs, "moss")
    assert loaded_sharegpt == converted(env, tmp_path, inputs, "sharegpt")


def test_download_recovers_from_a_cut_transfer(hub, inputs, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    ok(push(env, inputs, "tester/cut", "--formats", "sharegpt", cwd=tmp_path))
    cut = hub.inject("resolve", status="truncate", times=1)  # the Parquet GET stops half-way
    ok(cli(env, "download", "tester/cut", "--to", "sharegpt", "-o", tmp_path / "s.jsonl"))
    assert cut.fired == 1
    gets = [path for _, route, path, _ in hub.requests if route == "resolve"]
    assert len(gets) == 2 and gets[0] == gets[1], "the cut file is fetched again"
    assert rows(tmp_path / "s.jsonl") == converted(env, tmp_path, inputs, "sharegpt")


def test_download_without_network_fails_fast(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    env = hub_env(tmp_path, f"http://127.0.0.1:{port}")
    r = cli(env, "download", "alpaca", "-o", tmp_path / "a.jsonl")
    assert r.returncode == 1 and "Traceback" not in r.err
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in r.err and "HF_ENDPOINT" in r.err
    assert not (tmp_path / "a.jsonl").exists()


def _upload(env: dict, repo_id: str, files: dict[str, bytes], token: str) -> None:
    """Publish raw files the way a third party would (huggingface_hub, in a subprocess)."""
    code = (
        "import sys, json, base64\n"
        "from huggingface_hub import HfApi, CommitOperationAdd\n"
        "api = HfApi(token=sys.argv[2])\n"
        "api.create_repo(sys.argv[1], repo_type='dataset', exist_ok=True)\n"
        "files = json.loads(sys.stdin.read())\n"
        "ops = [CommitOperationAdd(p, base64.b64decode(b)) for p, b in files.items()]\n"
        "api.create_commit(sys.argv[1], ops, commit_message='publish', repo_type='dataset')\n"
    )
    import base64

    payload = json.dumps({p: base64.b64encode(b).decode() for p, b in files.items()})
    r = subprocess.run([sys.executable, "-c", code, repo_id, token], input=payload, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_download_registry_names_use_their_format_files_and_licence(tmp_path):
    publisher = "hf_" + secrets.token_hex(8)
    fnlp = "hf_" + secrets.token_hex(8)
    dolly = sample(tmp_path, "dolly.jsonl", [
        {"instruction": "When was the tower finished?", "context": "It was completed in March 1889.",
         "response": "In March 1889.", "category": "closed_qa"}])
    moss = SAMPLES / "moss.jsonl"
    if not moss.exists():
        pytest.skip("data/samples/moss.jsonl not written yet")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("moss-003-sft-no-tools.jsonl", moss.read_bytes())
    with HubDouble(tmp_path / "store", tokens={TOKEN: "tester", publisher: "databricks", fnlp: "fnlp"}) as hub:
        env = hub_env(tmp_path, hub.endpoint)
        _upload(env, "databricks/databricks-dolly-15k", {"databricks-dolly-15k.jsonl": dolly.read_bytes(),
                                                        "README.md": b"# dolly\n"}, publisher)
        _upload(env, "fnlp/moss-003-sft-data", {"moss-003-sft-no-tools.jsonl.zip": archive.getvalue()}, fnlp)
        r = ok(cli(env, "download", "dolly", "--to", "alpaca", "-o", tmp_path / "dolly.alpaca.jsonl"))
        assert "licence cc-by-sa-3.0" in r.out
        stats = json.loads((tmp_path / "dolly.alpaca.stats.json").read_text())["source"]
        assert stats["revision"] == hub.head("databricks/databricks-dolly-15k")
        assert stats["license"] == "cc-by-sa-3.0" and stats["format"] == "dolly"
        assert rows(tmp_path / "dolly.alpaca.jsonl") == converted(env, tmp_path, [dolly], "alpaca")
        ok(cli(env, "download", "moss-003-sft", "-o", tmp_path / "moss.jsonl"))
        assert rows(tmp_path / "moss.jsonl") == converted(env, tmp_path, [moss], "moss")


def test_registry_entries_name_known_formats():
    from instructgen import formats
    from instructgen.hub import find_published, published

    sets = published()
    assert {"tatsu-lab/alpaca", "yahma/alpaca-cleaned", "databricks/databricks-dolly-15k", "fnlp/moss-003-sft-data",
            "anon8231489123/ShareGPT_Vicuna_unfiltered", "HuggingFaceH4/ultrachat_200k"} <= {s.repo for s in
                                                                                           sets.values()}
    assert any(s.repo.startswith("BelleGroup/") for s in sets.values())
    for s in sets.values():
        assert s.format in formats.names(), (s.name, s.format)
        assert s.license and s.split in s.data_files
    assert find_published("TATSU-LAB/alpaca") is sets["alpaca"]


def test_refuses_to_publish_data_holding_the_token(hub, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_bytes(orjson.dumps({"instruction": f"my token is {TOKEN}", "input": "", "output": "ok"}) + b"\n")
    r = push(env, [leaky], "tester/leak", "--formats", "alpaca", cwd=tmp_path)
    assert r.returncode == 1 and "refusing to publish a secret" in r.err
    assert not hub.requests_of("commit")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # httpx2 on huggingface_hub's LFS PUT
def test_push_in_process_replaces_stale_shards_and_keeps_other_splits_and_configs(hub, tmp_path, monkeypatch):
    """push() called as a library function (as the Prefect flow does), endpoint passed explicitly."""
    from huggingface_hub import constants

    from instructgen.hub import PublishConfig
    from instructgen.hub import push as push_records
    from instructgen.record import from_pairs

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    records = [from_pairs([(f"question {i}", f"answer {i}")]) for i in range(5)]

    def remote_files() -> set[str]:
        return set(hub.commits("tester/shards")[hub.head("tester/shards")]["files"])

    def card_configs() -> dict:
        meta = yaml.safe_load(hub.file_bytes("tester/shards", "README.md").decode().split("---\n")[1])
        return {c["config_name"]: [d["split"] for d in c["data_files"]] for c in meta["configs"]}

    alpaca = PublishConfig(repo="tester/shards", formats=["alpaca"], shard_rows=2)
    first = push_records(records, alpaca, endpoint=hub.endpoint)
    assert first.changed and {f"alpaca/train-0000{i}-of-00003.parquet" for i in range(3)} <= remote_files()
    second = push_records(records[:3], alpaca, endpoint=hub.endpoint)
    assert second.changed and hub.commits("tester/shards")[second.commit_sha]["parent"] == first.commit_sha
    assert remote_files() == {".gitattributes", "README.md", "alpaca/train-00000-of-00002.parquet",
                              "alpaca/train-00001-of-00002.parquet"}
    test = push_records(records[3:], alpaca.model_copy(update={"split": "test"}), endpoint=hub.endpoint)
    assert "alpaca/test-00000-of-00001.parquet" in remote_files() and "alpaca/train-00001-of-00002.parquet" in \
        remote_files()
    assert card_configs() == {"alpaca": ["test", "train"]}
    openai = PublishConfig(repo="tester/shards", formats=["openai"])
    other = push_records(records, openai, endpoint=hub.endpoint)
    assert card_configs() == {"openai": ["train"], "alpaca": ["test", "train"]}
    assert not push_records(records, openai, endpoint=hub.endpoint).changed
    assert hub.head("tester/shards") == other.commit_sha != test.commit_sha


def test_config_names_follow_the_formats_or_the_given_name():
    from instructgen.hub import config_names

    assert config_names(["moss", "sharegpt"], None) == {"moss": "moss", "sharegpt": "sharegpt"}
    assert config_names(["moss"], "zh") == {"moss": "zh"}
    assert config_names(["moss", "alpaca"], "zh") == {"moss": "zh-moss", "alpaca": "zh-alpaca"}


def test_hub_modules_import_in_one_direction_and_no_private_names():
    """hub/__init__ lists its modules so that each imports only from those after it: no circle."""
    import ast

    import instructgen.hub as hub

    order = ["publish", "fetch", "folder", "card", "archive", "files", "parquet", "registry", "config", "http"]
    folder = Path(hub.__file__).parent
    assert sorted(order) == sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    for name in order:
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert order.index(node.module) > order.index(name), f"{name} imports {node.module}"
                assert not [a.name for a in node.names if a.name.startswith("_")], f"{name}: private import"


def test_every_push_flag_of_before_still_works_and_builds_the_publish_config():
    from instructgen.cli import build_parser
    from instructgen.cli.options import config_from_args
    from instructgen.hub import PublishConfig

    args = build_parser().parse_args([
        "push", "a.jsonl", "b.jsonl", "--repo", "me/set", "--formats", "moss,alpaca", "--config-name", "zh",
        "--split", "test", "--from", "alpaca", "--private", "--create-pr", "--token-env", "MY_TOKEN",
        "--dry-run", "dir", "--stats", "s.json", "--license", "mit", "--language", "zh", "--language", "en",
        "--pretty-name", "Zh set", "--tag", "a", "--tag", "b", "--message", "msg", "--rejects-dir", "rej",
    ])
    config = config_from_args(PublishConfig, args, languages=args.languages, tags=args.tags)
    assert config == PublishConfig(repo="me/set", formats=("moss", "alpaca"), config_name="zh", split="test",
                                   private=True, create_pr=True, token_env="MY_TOKEN", license="mit",
                                   languages=("zh", "en"), pretty_name="Zh set", tags=("a", "b"), message="msg")
    assert config.config_names() == {"moss": "zh-moss", "alpaca": "zh-alpaca"}
    assert (args.inputs, args.from_format, args.dry_run, args.stats, args.rejects_dir) == (
        ["a.jsonl", "b.jsonl"], "alpaca", "dir", "s.json", "rej")


@pytest.mark.parametrize("argv,message", [
    (["--formats", "nope"], "--formats: unknown format 'nope'"),
    (["--repo", "no-owner"], "--repo: String should match pattern"),
    (["--split", "a/b"], "--split: String should match pattern"),
])
def test_a_bad_push_setting_is_one_line_naming_its_flag(hub, inputs, tmp_path, argv, message):
    env = hub_env(tmp_path, hub.endpoint)
    repo = [] if "--repo" in argv else ["--repo", "tester/bad"]
    r = cli(env, "push", *inputs, *repo, *argv, cwd=tmp_path)
    assert r.returncode == 1 and message in r.err and "Traceback" not in r.err, r.err
    assert not hub.requests


def test_card_sources_are_public_names_with_checksums(tmp_path):
    import hashlib

    from instructgen.hub import CardInfo

    (tmp_path / "data").mkdir()
    local = tmp_path / "data" / "a.jsonl"
    local.write_bytes(b'{"instruction": "x", "output": "y"}\n')
    info = CardInfo.from_stats({"sources": [
        {"path": "data/a.jsonl"},  # relative to the stats file's folder
        {"path": str(local)},
        {"path": "/somewhere/else/b.jsonl", "sha256": "f" * 64, "records": 2},
        {"path": "../outside.jsonl"},
        {"repo": "tatsu-lab/alpaca", "revision": "abc", "path": str(local)},
    ]}, base_dir=tmp_path)
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    assert [(s.name, s.revision, s.sha256) for s in info.sources] == [
        ("data/a.jsonl", None, sha), ("data/a.jsonl", None, sha), ("b.jsonl", None, "f" * 64),
        ("outside.jsonl", None, None), ("tatsu-lab/alpaca", "abc", None)]
    # without a base folder, a relative name is already public; an absolute one keeps its file name only
    plain = CardInfo.from_stats({"sources": [{"path": "data/a.jsonl"}, {"path": str(local)}]})
    assert [s.name for s in plain.sources] == ["data/a.jsonl", "a.jsonl"]
