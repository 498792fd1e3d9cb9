"""Issue 20: every output loads where people load it.

Parquet holds no Arrow extension type (datasets < 5 refuses `arrow.json`): nested data is native where
its shape is fixed, JSON text in a plain string column where it varies (named in the file's metadata).
ShareGPT output speaks one role vocabulary, and validate flags a file that mixes two.
The real readers in their own environments are run by benchmarks/readers.py; here, the installed
`datasets` and polars, and datasets 4.0 when the client environment is built (skipped otherwise).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructgen.cli import main
from instructgen.io import read_rows

TOOL_CHAT = {"messages": [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
    {"role": "assistant", "content": "18C in Paris."}],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]}
PLAIN = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
         "meta": {"id": 3, "source": {"name": "x"}}}
MOSS_INT_ID = {"conversation_id": 1, "meta_instruction": "m", "num_turns": 1,
               "chat": {"turn_1": {"Human": "<|Human|>: q<eoh>\n", "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                                   "Commands": "<|Commands|>: None<eoc>\n", "Tool Responses": "<|Results|>: None<eor>\n",
                                   "MOSS": "<|MOSS|>: a<eom>\n"}}}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def without_nulls(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None}


def extension_types(t) -> list:
    if isinstance(t, pa.ExtensionType):
        return [t]
    if pa.types.is_struct(t):
        return [x for i in range(t.num_fields) for x in extension_types(t.field(i).type)]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return extension_types(t.value_type)
    return []


@pytest.fixture
def rich(tmp_path) -> Path:
    """Tool calls, varying meta, preference pairs: every shape that used to need JSON columns."""
    return write_jsonl(tmp_path / "rich.jsonl", [TOOL_CHAT, PLAIN, TOOL_CHAT, PLAIN])


@pytest.mark.parametrize("to", ["openai", "sharegpt", "chatglm3", "moss", "alpaca"])
def test_parquet_outputs_hold_no_extension_type_and_read_back_exactly(rich, to, tmp_path, capsys):
    out, back = tmp_path / f"out.{to}.parquet", tmp_path / f"out.{to}.jsonl"
    assert main(["convert", str(rich), "--to", to, "-o", str(out)]) == 0
    assert main(["convert", str(rich), "--to", to, "-o", str(back)]) == 0
    schema = pq.read_schema(out)
    assert [f.name for f in schema if extension_types(f.type)] == []
    json_columns = json.loads(schema.metadata[b"instructgen"])["json_columns"]
    assert all(schema.field(name).type == pa.string() for name in json_columns)
    # a key some rows lack is null in both (JSONL writes it, Parquet's column holds it; its reader leaves it out)
    assert [r.data for r in read_rows(str(out))] == [without_nulls(r.data) for r in read_rows(str(back))]


def test_the_installed_datasets_and_polars_load_the_parquet(rich, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    polars = pytest.importorskip("polars")
    out = tmp_path / "out.parquet"
    assert main(["convert", str(rich), "--to", "openai", "-o", str(out)]) == 0
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 4 and {"messages", "tools", "meta"} <= set(ds.column_names)
    # JSON text where the shape varies: json.loads gives the record back
    assert json.loads(ds[0]["messages"])[1]["tool_calls"][0]["function"]["name"] == "weather"
    assert polars.read_parquet(out).height == 4


def test_a_moss_file_with_int_and_string_ids_loads_in_datasets(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    src = write_jsonl(tmp_path / "moss.jsonl", [MOSS_INT_ID, {**MOSS_INT_ID, "conversation_id": "c-2"}])
    out = tmp_path / "moss.parquet"
    assert main(["convert", str(src), "--to", "moss", "-o", str(out)]) == 0
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert [json.loads(x) for x in ds["conversation_id"]] == [1, "c-2"]


def test_the_hub_folder_loads_per_config_with_the_installed_datasets(rich, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hub"
    assert main(["push", str(rich), "--repo", "me/x", "--formats", "openai,sharegpt,moss", "--dry-run", str(folder),
                 "--rejects-dir", str(tmp_path / "rej")]) == 0
    for config in ("openai", "sharegpt", "moss"):
        ds = datasets.load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == 4, config
        for shard in (folder / config).glob("*.parquet"):
            assert not [f for f in pq.read_schema(shard) if extension_types(f.type)]


def _client_python(name: str) -> Path:
    root = Path(os.environ.get("IG_CLIENTS", Path(tempfile.gettempdir()) / "ig-clients"))
    python = root / name / "bin" / "python"
    if not (root / name / ".built").exists() or not python.exists():
        pytest.skip(f"client environment {name} not built (bash ../shared/tools/clients/client_venvs.sh)")
    return python


def test_datasets_4_0_loads_our_parquet_and_hub_folder(rich, tmp_path, capsys):
    """LLaMA-Factory 0.9.5 pins datasets 4.0, which refuses Arrow's JSON extension type."""
    python = _client_python("ds4")
    out, folder = tmp_path / "out.parquet", tmp_path / "hub"
    assert main(["convert", str(rich), "--to", "openai", "-o", str(out)]) == 0
    assert main(["push", str(rich), "--repo", "me/x", "--formats", "openai,moss", "--dry-run", str(folder),
                 "--rejects-dir", str(tmp_path / "rej")]) == 0
    code = (
        "import datasets, sys; c = sys.argv[3]\n"
        "a = datasets.load_dataset('parquet', data_files=sys.argv[1], split='train', cache_dir=c)\n"
        "b = [len(datasets.load_dataset(sys.argv[2], n, split='train', cache_dir=c)) for n in ('openai', 'moss')]\n"
        "print(datasets.__version__, len(a), *b)\n"
    )
    proc = subprocess.run([str(python), "-c", code, str(out), str(folder), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.split() == ["4.0.0", "4", "4", "4"]


# -- one role vocabulary (issue 20.3) -----------------------------------------------------------------

HUMAN_GPT = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
USER_ASSISTANT = {"conversations": [{"from": "user", "value": "q2"}, {"from": "assistant", "value": "a2"}]}


def test_merging_two_vocabularies_writes_one(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", [HUMAN_GPT] * 3)
    b = write_jsonl(tmp_path / "b.jsonl", [USER_ASSISTANT] * 2)
    out = tmp_path / "all.json"
    assert main(["convert", str(a), str(b), "--to", "sharegpt", "-o", str(out)]) == 0
    assert "role tags written as human/gpt (one vocabulary per file): 2 records" in capsys.readouterr().err
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert {t["from"] for r in rows for t in r["conversations"]} == {"human", "gpt"}
    assert main(["validate", str(out)]) == 0


def test_tags_chooses_the_vocabulary_and_only_for_sharegpt(tmp_path, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", [HUMAN_GPT, USER_ASSISTANT])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "sharegpt", "--tags", "user-assistant", "-o", str(out)]) == 0
    assert {t["from"] for r in read_rows(str(out)) for t in r.data["conversations"]} == {"user", "assistant"}
    assert main(["convert", str(src), "--to", "openai", "--tags", "user-assistant", "-o", str(out)]) == 1
    assert "--tags applies to --to sharegpt" in capsys.readouterr().err


def test_validate_flags_tags_mixed_across_records_and_within_one(tmp_path, capsys):
    across = write_jsonl(tmp_path / "across.jsonl", [HUMAN_GPT] * 3 + [USER_ASSISTANT] * 2)
    assert main(["validate", str(across)]) == 1
    out = capsys.readouterr().out
    assert "mixed role tags across records" in out and "3 records use 'gpt'" in out and "2 records use 'assistant'" in out
    within = write_jsonl(tmp_path / "within.jsonl", [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "assistant", "value": "a"},
                           {"from": "user", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    assert main(["validate", str(within)]) == 1
    assert "mixed role tags in one record" in capsys.readouterr().out


# -- openai: a call-only message always has "content": null (issue 20.6) ------------------------------------

def test_a_call_only_message_without_content_is_written_with_content_null(tmp_path, capsys):
    row = {"messages": [{"role": "user", "content": "weather?"},
                        {"role": "assistant", "tool_calls": TOOL_CHAT["messages"][1]["tool_calls"]},
                        {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
                        {"role": "assistant", "content": "18C."}]}
    src = write_jsonl(tmp_path / "in.jsonl", [row])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "openai", "-o", str(out)]) == 0
    (written,) = [r.data for r in read_rows(str(out))]
    assert "content" in written["messages"][1] and written["messages"][1]["content"] is None
    assert written["messages"][1]["tool_calls"] == row["messages"][1]["tool_calls"]


# -- sharegpt: every row has a string id (issue 20.5) --------------------------------------------------------

def test_every_sharegpt_row_has_a_string_id_and_made_ids_add_nothing_downstream(tmp_path, capsys):
    rows = [{"instruction": "a", "input": "", "output": "b"}, {"instruction": "a", "input": "x", "output": "b"}]
    src = write_jsonl(tmp_path / "al.jsonl", rows)
    out, back = tmp_path / "s.jsonl", tmp_path / "back.jsonl"
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(out), "--workers", "1"]) == 0
    assert "id made from the turns (FastChat needs a string id): 2 records" in capsys.readouterr().err
    written = [r.data for r in read_rows(str(out))]
    assert all(isinstance(r["id"], str) and r["id"].startswith("ig-") for r in written)
    assert len({r["id"] for r in written}) == 2
    again = tmp_path / "again.jsonl"  # stable: the same record gets the same id
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert main(["convert", str(out), "--to", "alpaca", "-o", str(back)]) == 0
    assert [r.data for r in read_rows(str(back))] == rows  # the made id is no information: not carried


def test_an_int_id_is_written_as_text_and_read_back_as_an_int(tmp_path, capsys):
    moss = write_jsonl(tmp_path / "moss.jsonl", [MOSS_INT_ID])
    out, back = tmp_path / "s.jsonl", tmp_path / "back.jsonl"
    assert main(["convert", str(moss), "--to", "sharegpt", "-o", str(out)]) == 0
    (row,) = [r.data for r in read_rows(str(out))]
    assert row["id"] == "1"
    assert main(["convert", str(out), "--to", "moss", "-o", str(back)]) == 0
    assert [r.data for r in read_rows(str(back))] == [MOSS_INT_ID]


# -- media columns stay top-level; placeholders match the files (issue 20.4) ------------------------------------

def test_media_stay_top_level_and_validate_counts_placeholders(shared, tmp_path, capsys):
    src = shared("real", "llamafactory_mllm_demo.json")
    source_rows = json.loads(src.read_text(encoding="utf-8"))
    for to in ("sharegpt", "history", "openai"):
        out = tmp_path / f"mm.{to}.json"
        assert main(["convert", str(src), "--to", to, "-o", str(out)]) == 0
        rows = json.loads(out.read_text(encoding="utf-8"))
        assert [r["images"] for r in rows] == [r["images"] for r in source_rows], to
        assert all("images" not in r.get("meta", {}) for r in rows)
        assert main(["validate", str(out)]) == 0, to
    # alpaca keeps the first turn: a record whose other turns held placeholders is refused, with the reason
    out = tmp_path / "mm.alpaca.json"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    rejected = [json.loads(line)["reason"] for line in (tmp_path / "mm.alpaca.rejects.jsonl").read_text().splitlines()]
    assert rejected and all("placeholder" in reason for reason in rejected)
    assert main(["validate", str(out)]) == 0
    capsys.readouterr()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "human", "value": "<image>Who?"},
                                                                   {"from": "gpt", "value": "Kane."}],
                                                "images": ["a.jpg", "b.jpg"]}])
    assert main(["validate", str(bad)]) == 1
    assert "2 images but 1 <image> placeholder" in capsys.readouterr().out


# -- OpenAI's own layouts (issue 20.6) ---------------------------------------------------------------------------

PAIR = {"conversations": [{"from": "human", "value": "2+2?"}], "chosen": {"from": "gpt", "value": "4"},
        "rejected": {"from": "gpt", "value": "5"}, "id": "p1", "source": "web"}
KTO = {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "label": True}


def test_strict_openai_layout_writes_only_the_keys_openai_defines(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [PAIR, KTO, {**HUMAN_GPT, "images": []}])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "openai", "--layout", "strict", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    rows = [r.data for r in read_rows(str(out))]
    assert all(set(r) <= {"messages", "tools"} for r in rows)
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "4"}  # the chosen answer
    assert "rejected answer dropped" in err and "KTO label dropped" in err
    assert "field 'source' dropped (OpenAI's strict layout)" in err and "field 'images' dropped" in err
    assert main(["validate", str(out)]) == 0


def test_openai_preference_layout_round_trips_and_refuses_what_is_not_a_pair(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [PAIR, KTO])
    out, back = tmp_path / "out.jsonl", tmp_path / "back.jsonl"
    assert main(["convert", str(src), "--to", "openai", "--layout", "preference", "-o", str(out)]) == 0
    (row,) = [r.data for r in read_rows(str(out))]
    assert row == {"input": {"messages": [{"role": "user", "content": "2+2?"}]},
                   "preferred_output": [{"role": "assistant", "content": "4"}],
                   "non_preferred_output": [{"role": "assistant", "content": "5"}]}
    (reason,) = [json.loads(x)["reason"] for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert "needs a pair of answers" in reason and "KTO label" in reason
    assert main(["validate", str(out)]) == 0
    assert main(["convert", str(out), "--to", "sharegpt", "-o", str(back)]) == 0
    (pair,) = [r.data for r in read_rows(str(back))]
    assert pair["chosen"] == PAIR["chosen"] and pair["rejected"] == PAIR["rejected"]
    assert main(["convert", str(src), "--to", "alpaca", "--layout", "strict", "-o", str(back)]) == 1


# -- schema-stable JSON/JSONL: every row carries the same top-level keys (issue 20.7) ------------------------------

def _alpaca(i: int, **more) -> dict:
    return {"instruction": f"q{i}", "input": "", "output": f"a{i}", **more}


@pytest.mark.parametrize("suffix", ["jsonl", "json", "jsonl.gz"])
def test_a_key_that_first_appears_late_is_in_every_row_as_null_and_reads_back_as_absent(suffix, tmp_path, capsys):
    late = 150  # past polars' 100-row schema window
    rows = [_alpaca(i) for i in range(late)] + [_alpaca(late, input="ctx")] + [_alpaca(late + 1)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out, back = tmp_path / f"out.{suffix}", tmp_path / "back.jsonl"
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(out)]) == 0
    assert f"key 'meta' written as null (every row carries the same keys): {late + 1} records" in capsys.readouterr().err
    written = [r.data for r in read_rows(str(out))]
    assert {frozenset(r) for r in written} == {frozenset({"id", "conversations", "meta"})}
    assert written[late]["meta"] == {"split": {"instruction": f"q{late}", "input": "ctx"}}
    assert [r["meta"] for i, r in enumerate(written) if i != late] == [None] * (late + 1)
    assert main(["convert", str(out), "--to", "alpaca", "-o", str(back)]) == 0
    assert [r.data for r in read_rows(str(back))] == rows  # the nulls add nothing


def test_rows_that_already_agree_are_written_once_byte_for_byte(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [_alpaca(i) for i in range(5)])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    assert "written as null" not in capsys.readouterr().err
    assert out.read_bytes() == src.read_bytes().replace(b'", "', b'","').replace(b'": "', b'":"')


def test_a_null_optional_field_of_each_format_is_read_as_absent(tmp_path, capsys):
    rows = {"openai": [TOOL_CHAT, {**PLAIN, "tools": None}],
            "chatglm3": [{"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                          "tools": None}],
            "dolly": [{"instruction": "q", "context": "", "response": "a", "category": None}],
            "moss": [{**MOSS_INT_ID, "category": None}]}
    for fmt, batch in rows.items():
        src = write_jsonl(tmp_path / f"{fmt}.jsonl", batch)
        out = tmp_path / f"{fmt}.out.jsonl"
        assert main(["convert", str(src), "--from", fmt, "--to", fmt, "-o", str(out)]) == 0, fmt
        assert not (tmp_path / f"{fmt}.out.rejects.jsonl").exists() or \
            not (tmp_path / f"{fmt}.out.rejects.jsonl").read_text().strip(), fmt


def _real_inputs() -> list[Path]:
    from tests.conftest import shared_files

    return [p for folder in ("formats", "real") for p in shared_files(folder) if p.suffix in (".json", ".jsonl")]


@pytest.mark.parametrize("src", _real_inputs(), ids=lambda p: p.name)
def test_every_real_output_loads_with_every_key_in_polars_and_datasets(src, tmp_path, capsys):
    """polars takes its types from the first 100 rows and cannot type a key from nulls: the full scan
    (infer_schema_length=None) reads every output; datasets' JSON loader reads them as they are."""
    datasets = pytest.importorskip("datasets")
    polars = pytest.importorskip("polars")
    datasets.disable_progress_bars()
    from instructgen import formats

    for to in formats.names(writable_only=True):
        out = tmp_path / f"{to}.jsonl"
        if main(["convert", str(src), "--to", to, "-o", str(out)]) != 0 or not out.exists():
            continue  # a format that cannot hold these records: convert said why (tested elsewhere)
        written = [r.data for r in read_rows(str(out))]
        if not written:
            continue
        keys = set().union(*written)
        absent = formats.get(to).keep_absent  # keys its readers test by presence (chatglm3 tools): never null
        assert all(set(r) | absent == keys | absent for r in written), to
        frame = polars.read_ndjson(out, infer_schema_length=None)
        assert (frame.height, set(frame.columns)) == (len(written), keys), to
        ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
        assert (len(ds), set(ds.column_names)) == (len(written), keys), to
    capsys.readouterr()


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz"])
def test_rows_written_by_workers_get_the_same_keys_as_serial_ones(suffix, tmp_path, monkeypatch, capsys):
    from instructgen import convert_parallel

    monkeypatch.setattr(convert_parallel, "MIN_BYTES", 0)
    rows = [_alpaca(i) for i in range(300)] + [{**_alpaca(300), "history": [["q", "a"]]}] + [_alpaca(301)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs, texts = {}, {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.{suffix}"
        assert main(["convert", str(src), "--to", "sharegpt", "--workers", str(workers), "-o", str(out)]) == 0
        outputs[workers] = [r.data for r in read_rows(str(out))]
        texts[workers] = gzip.decompress(out.read_bytes()) if suffix == "jsonl.gz" else out.read_bytes()
    assert outputs[1] == outputs[2] and texts[1] == texts[2]  # the same bytes: workers hand over their rows' keys
    assert {frozenset(r) for r in outputs[2]} == {frozenset({"id", "conversations", "meta"})}


def test_openai_strict_layout_is_not_filled_and_passes_openais_checks(tmp_path, capsys):
    """OpenAI's checks refuse `"tools": null`: its own layouts keep only the keys a row has."""
    import importlib.util

    from tests.conftest import SHARED

    check_path = SHARED / "tools" / "clients" / "openai_check.py"
    src = write_jsonl(tmp_path / "in.jsonl", [TOOL_CHAT, PLAIN, TOOL_CHAT])
    out = tmp_path / "strict.jsonl"
    assert main(["convert", str(src), "--to", "openai", "--layout", "strict", "-o", str(out)]) == 0
    rows = [r.data for r in read_rows(str(out))]
    assert [set(r) for r in rows] == [{"messages", "tools"}, {"messages"}, {"messages", "tools"}]
    if not check_path.exists():
        pytest.skip("OpenAI's format checks not available (../shared/tools/clients/openai_check.py)")
    spec = importlib.util.spec_from_file_location("openai_check", check_path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    from collections import defaultdict

    errors: defaultdict = defaultdict(int)
    for row in rows:
        check.current(row, errors)
    assert dict(errors) == {}
