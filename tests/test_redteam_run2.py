"""Red team, issue 17: `instructgen run` and files planted in its output folder, settings and paths checked
before any work starts (one line each), a full disk named, and report.md free of the inputs' markup."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from conftest import SAMPLES

from instructgen.errors import InstructgenError
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline import stages as pipeline_stages
from instructgen.pipeline.config import load_config
from instructgen.pipeline.layout import LOCK, MANIFEST, hold_lock
from instructgen.report import ReportData, render_markdown
from instructgen.runlog import RunLog


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600, script: Path | None = None):
    cmd = [sys.executable, str(script) if script else "-m", *([] if script else ["instructgen.cli"]), *args]
    merged = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}  # None: unset it
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=merged)


def one_line_error(result) -> str:
    """Refused before Prefect started: exit 1, one line on stderr, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "prefect" not in result.stderr.lower(), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_config(folder: Path, extra: str = "", name: str = "p.toml") -> Path:
    path = folder / name
    path.write_text(f'[pipeline]\nformats = ["alpaca"]\n\n[[sources]]\npath = "{SAMPLES / "alpaca.jsonl"}"\n{extra}',
                    encoding="utf-8")
    return path


# -- files planted in the output folder -------------------------------------------------------------------

def test_a_planted_manifest_naming_paths_outside_the_folder_removes_nothing(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("mine", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_bytes(orjson.dumps({"entries": ["../victim", str(elsewhere), "data"]}))
    line = one_line_error(run_cli(["run", str(write_config(tmp_path)), "-o", "out"], tmp_path))
    assert str(Path("out") / MANIFEST) in line and "'../victim'" in line
    assert (victim / "thesis.txt").read_text(encoding="utf-8") == "years of work"
    assert elsewhere.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("entries", [["data/../../victim"], ["."], [""], ["signatures"], "data", [["data"]]])
def test_a_manifest_lists_only_names_a_run_writes(tmp_path, entries):
    (tmp_path / "victim").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "signatures").mkdir()
    (out / MANIFEST).write_bytes(orjson.dumps({"entries": entries}))
    with pytest.raises(InstructgenError, match=MANIFEST.replace(".", r"\.")):
        with OutputFolder(out) as layout:
            (layout.root / "stats.json").write_text("{}", encoding="utf-8")
    assert (tmp_path / "victim").is_dir() and (out / "signatures").is_dir()


def test_a_manifest_that_is_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "their-manifest.json"
    elsewhere.write_bytes(orjson.dumps({"entries": ["data"]}))
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "keep.jsonl").write_text("{}\n", encoding="utf-8")
    (out / MANIFEST).symlink_to(elsewhere)
    with pytest.raises(InstructgenError, match="symbolic link"):
        with OutputFolder(out):
            pass
    assert (out / "data" / "keep.jsonl").exists()


def test_an_entry_that_is_a_link_is_removed_as_a_link_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "data").symlink_to(victim)
    (out / MANIFEST).write_bytes(orjson.dumps({"entries": ["data"]}))
    with OutputFolder(out) as layout:
        (layout.root / "stats.json").write_text("{}", encoding="utf-8")
    assert (victim / "keep.txt").exists() and not os.path.lexists(out / "data")
    assert orjson.loads((out / MANIFEST).read_bytes()) == {"entries": ["stats.json"]}


def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).symlink_to(target)
    line = one_line_error(run_cli(["run", str(write_config(tmp_path)), "-o", "out"], tmp_path))
    assert str(Path("out") / LOCK) in line and "symbolic link" in line
    assert target.read_text(encoding="utf-8") == "do not truncate me"


def test_a_lock_that_is_a_hard_link_or_not_a_file_is_refused(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    os.link(target, out / LOCK)
    with pytest.raises(InstructgenError, match="hard link"), hold_lock(out):
        pass
    assert target.read_text(encoding="utf-8") == "do not truncate me"
    (out / LOCK).unlink()
    os.mkfifo(out / LOCK)
    with pytest.raises(InstructgenError, match="not a plain file"), hold_lock(out):
        pass


@pytest.mark.parametrize("name", ["signatures", ".cache"])
def test_kept_folders_that_are_links_are_refused(tmp_path, name):
    """signatures/ and .cache/ are written in place: a planted link would send those writes elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(elsewhere)
    with pytest.raises(InstructgenError, match=f"{name} is a symbolic link"):
        with OutputFolder(out):
            pass
    assert list(elsewhere.iterdir()) == []


def test_a_foreign_stats_file_is_refused_before_prefect_starts(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stats.json").write_text('{"mine": true}\n', encoding="utf-8")
    line = one_line_error(run_cli(["run", str(write_config(tmp_path)), "-o", "out"], tmp_path))
    assert "stats.json" in line and "no instructgen run wrote" in line
    assert (tmp_path / "out" / "stats.json").read_text(encoding="utf-8") == '{"mine": true}\n'


# -- settings and paths checked before any work -----------------------------------------------------------

@pytest.mark.parametrize("reference, text, problem", [
    ("notes.txt", "a note\n", "unknown file type"),
    ("garbage.jsonl", "not a record\n<<<\n", "no record in"),
    ("other.jsonl", '{"x": 1}\n', "no format fits"),
])
def test_a_dedup_reference_that_cannot_be_read_is_one_line_before_any_work(tmp_path, reference, text, problem):
    (tmp_path / reference).write_text(text, encoding="utf-8")
    cfg = write_config(tmp_path, f'\n[dedup]\nagainst = ["{reference}"]\n')
    line = one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))
    assert line.startswith(f"instructgen run: error: {cfg}:8: dedup.against[0]: ") and problem in line
    assert str(tmp_path / reference) in line
    assert not (tmp_path / "out" / "data").exists()


def test_a_source_of_an_unknown_type_is_one_line_before_any_work(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n", encoding="utf-8")
    cfg = write_config(tmp_path, '\n[[sources]]\npath = "notes.txt"\n')
    line = one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))
    assert "sources[1].path" in line and "unknown file type" in line


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dask_address_nothing_answers_on_is_one_line_before_prefect(tmp_path):
    spec = f"dask=tcp://127.0.0.1:{_closed_port()}"
    line = one_line_error(run_cli(["run", str(write_config(tmp_path)), "-o", "out", "--runner", spec], tmp_path,
                                  timeout=120))
    assert f"--runner {spec}" in line and "no Dask scheduler" in line and "connection refused" in line


def test_a_listener_that_is_not_a_dask_scheduler_is_said_within_the_timeout():
    from instructgen_flows.runners import check_reachable

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
        with pytest.raises(InstructgenError, match="no Dask scheduler did"):
            check_reachable(f"dask={address}", timeout=2)


# -- a full disk -------------------------------------------------------------------------------------------

FULL_DISK = '''
import builtins, errno, sys
import instructgen.pipeline.stages as stages

real_open = builtins.open


class FullDisk:
    """A file on a full disk: it opens, and its first write fails as the kernel's does (naming no file)."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def __getattr__(self, name):
        return getattr(self.fh, name)


def open_on_full_disk(path, mode="r", *args, **kwargs):
    fh = real_open(path, mode, *args, **kwargs)
    return FullDisk(fh) if "w" in mode else fh


stages.open = open_on_full_disk  # in the worker processes too: they import this module again

if __name__ == "__main__":
    from instructgen.cli import main

    sys.exit(main(sys.argv[1:]))
'''


class _FullDisk:
    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_a_full_disk_names_the_output_folder_and_keeps_the_previous_run(tmp_path, monkeypatch):
    cfg = load_config(write_config(tmp_path))
    out = tmp_path / "out"
    with OutputFolder(out) as layout:
        run(cfg, layout, announce=lambda _m: None)
    before = (out / "data" / "alpaca.jsonl").read_bytes()
    monkeypatch.setattr(pipeline_stages, "open", lambda path, mode="r", *a, **k: _FullDisk(open(path, mode, *a, **k)),
                        raising=False)
    with pytest.raises(InstructgenError) as failed:
        with OutputFolder(out) as layout:
            run(cfg, layout, announce=lambda _m: None)
    assert str(failed.value).startswith(f"{out.resolve()}: No space left on device")
    assert "free some space there" in str(failed.value)
    assert (out / "data" / "alpaca.jsonl").read_bytes() == before
    assert not list(out.glob(".staging-*"))


def test_a_full_disk_during_run_is_one_line_naming_the_path(tmp_path, prefect_home):
    """`instructgen run` as a user runs it (Prefect's temporary server), shards on worker processes whose spool
    writes fail with ENOSPC: no traceback from the workers or the flow, and no second Prefect server."""
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK, encoding="utf-8")
    result = run_cli(["run", str(write_config(tmp_path)), "-o", "out", "--runner", "processes"], tmp_path,
                     script=script, env={"PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": None})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("instructgen run: error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"instructgen run: error: {(tmp_path / 'out').resolve()}: No space left on device")
    assert result.stderr.count("Starting temporary server") == 1, result.stderr
    assert len(result.stderr.splitlines()) < 20, result.stderr
    assert not (tmp_path / "out" / "data").exists()


# -- report.md ---------------------------------------------------------------------------------------------

class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)


def rendered_elements(markdown: str) -> set[str]:
    """The HTML elements a CommonMark viewer (with tables) makes of MARKDOWN."""
    from markdown_it import MarkdownIt

    parser = Elements()
    parser.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return parser.tags


MARKUP = "<img src=x onerror=alert(1)><script>alert(2)</script>"
MARKDOWN_ELEMENTS = {"h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "code", "pre"}


def test_report_md_makes_no_element_of_names_and_records(tmp_path):
    log = RunLog("read")
    log.took_in(2)
    log.emitted(1)
    log.drop(f"`{MARKUP}`.jsonl:3", f"bad {MARKUP}", f"x\n```\n{MARKUP}\n```", kind="rejected")
    data = ReportData(
        title=f"{MARKUP}: pipeline report",
        stages=[log.to_dict()],
        examples={f"read: bad {MARKUP}": log.examples[f"bad {MARKUP}"]},
        outputs={"alpaca": f"data/``{MARKUP}`.jsonl"},
        hub={"repo": "me/data", "dry_run_dir": f"out/{MARKUP}/hub"},
        notes=[f"config: {MARKUP}.toml", "[click](http://example.com) ![pixel](http://example.com/p.png)"],
    )
    md = render_markdown(data)
    assert rendered_elements(md) <= MARKDOWN_ELEMENTS, md
    assert "`data/``" in md  # the file name in one code span that its backticks cannot close


def test_report_md_of_a_run_named_with_markup(tmp_path):
    src = tmp_path / f"{MARKUP.replace('/', '_')}.jsonl"
    src.write_bytes((SAMPLES / "alpaca.jsonl").read_bytes())
    cfg_path = tmp_path / "p.toml"
    cfg_path.write_text(f'[pipeline]\nname = "{MARKUP}"\nformats = ["alpaca"]\n\n[[sources]]\npath = "{src.name}"\n',
                        encoding="utf-8")
    with OutputFolder(tmp_path / "out") as layout:
        run(load_config(cfg_path), layout, announce=lambda _m: None)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in md.splitlines()[0]
    assert rendered_elements(md) <= MARKDOWN_ELEMENTS, md


# -- a key inside the generation endpoint's URL -----------------------------------------------------------

def test_a_key_in_the_generation_url_reaches_no_log_database_or_output(tmp_path):
    """`base_url = "http://user:KEY@host/v1"` in [generate] and [score]: `instructgen run` works (the credentials go to the endpoint), and
    the key is in nothing Prefect stores (its database and result storage under PREFECT_HOME: flow and task
    run parameters, logs, artifacts), nothing printed and no output file."""
    from llm_double import LLMDouble  # a test double of the remote model

    key = "sk-in-url-" + os.urandom(8).hex()
    repo = Path(__file__).resolve().parent.parent
    home = tmp_path / "prefect-home"
    env = {k: None for k in os.environ if k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", OPENAI_API_KEY=None)
    from judge_double import JudgeDouble  # the same double answering judge prompts: the [score] endpoint

    with LLMDouble() as double, JudgeDouble() as judge:
        url = double.base_url.replace("http://", f"http://alice:{key}@")
        judge_url = judge.base_url.replace("http://", f"http://alice:{key}@")
        cfg = write_config(tmp_path, (
            f'\n[generate]\nenabled = true\nseed_tasks = "{repo / "data" / "seeds" / "seed_tasks_en.jsonl"}"\n'
            f'num_instructions = 6\nbase_url = "{url}"\nmodel = "double"\nconcurrency = 2\n'
            f'\n[score]\nenabled = true\njudge = "alpagasus"\nbase_url = "{judge_url}"\nconcurrency = 2\n'))
        result = run_cli(["run", str(cfg), "-o", "out"], tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert double.total_hits > 0 and judge.total_hits > 0
    assert key not in result.stdout + result.stderr
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in stored)  # the database the run wrote is searched
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert not [p for p in stored + written if key.encode() in p.read_bytes()]
