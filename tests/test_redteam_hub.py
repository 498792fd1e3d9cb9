"""Red team: hostile Hub repos, lost commit answers, leaked local paths, outputs that would hit inputs.

Each test runs `instructgen download` / `instructgen push` as a subprocess against tests/hub_double.py
(the repo contents put there as a hostile publisher would) and asserts what survives: the local files
that must not be touched, the output that must not appear, the commit that must be reported.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_double import HubDouble
from test_hub import ALPACA, TOKEN, cli, commit_of, hub_env, ok, push, rows


@pytest.fixture
def hub(tmp_path):
    with HubDouble(tmp_path / "hub-store", tokens={TOKEN: "tester"}) as double:
        yield double


@pytest.fixture
def env(hub, tmp_path):
    return hub_env(tmp_path, hub.endpoint)


def jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def tarred(*members: tuple[tarfile.TarInfo, bytes | None], compression: str = "gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if data is not None else 0
    return info, data


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def local_files(tmp_path: Path) -> list[str]:
    """What a run left in the test's folder, besides the Hub's cache and the double's store."""
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if not p.relative_to(tmp_path).parts[0] in ("hf-home", "hub-store"))


def refused(r, *needles: str) -> str:
    assert r.returncode == 1, f"expected a refusal\nstdout:\n{r.out}\nstderr:\n{r.err}"
    assert "Traceback" not in r.err, r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    return r.err


# -- 9.3: a downloaded dataset is untrusted ------------------------------------------------------

@pytest.fixture
def victim(tmp_path) -> Path:
    """A local Parquet file a hostile archive names by its absolute path, and the folder it lives in."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "victim"
    folder.mkdir()
    pq.write_table(pa.table({"instruction": ["SECRET-LOCAL-RECORD"], "input": [""], "output": ["private"]}),
                   folder / "secret.parquet")
    return folder / "secret.parquet"


def test_zip_member_with_an_absolute_name_is_refused_and_no_local_file_is_read(hub, env, tmp_path, victim):
    before = files_under(victim.parent)
    hub.publish("evil/abs-zip", {"data.zip": zipped({str(victim): b"{}\n", "ok.jsonl": jsonl(ALPACA)})})
    out = tmp_path / "out.jsonl"
    err = refused(cli(env, "download", "evil/abs-zip", "-o", out), "absolute path", "refusing the archive")
    assert str(victim) in err
    assert not out.exists() and not (tmp_path / "out.stats.json").exists()
    assert files_under(victim.parent) == before, "nothing may be created beside (or read from) the named path"


def test_zip_member_climbing_out_with_dotdot_is_refused(hub, env, tmp_path):
    hub.publish("evil/slip-zip", {"data.zip": zipped({"../../escaped.jsonl": jsonl(ALPACA)})})
    work = tmp_path / "work"
    work.mkdir()
    before = local_files(tmp_path)
    refused(cli(env, "download", "evil/slip-zip", "-o", work / "out.jsonl", cwd=work), "'..'", "refusing the archive")
    assert not list(tmp_path.parent.glob("escaped.jsonl")) and not list(tmp_path.glob("**/escaped.jsonl"))
    assert local_files(tmp_path) == before and not (work / "out.jsonl").exists()


def test_zip_symlink_member_is_refused(hub, env, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("data.jsonl")
        link.external_attr = (0o120777 << 16)  # a symbolic link whose "content" is its target
        zf.writestr(link, "/etc/passwd")
    hub.publish("evil/link-zip", {"data.zip": buf.getvalue()})
    refused(cli(env, "download", "evil/link-zip", "-o", tmp_path / "out.jsonl"), "symbolic link")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("kind,link,needle", [
    (tarfile.SYMTYPE, "/etc/passwd", "is a link"),
    (tarfile.LNKTYPE, "other.jsonl", "is a link"),
    (tarfile.CHRTYPE, "", "device or fifo"),
    (tarfile.FIFOTYPE, "", "device or fifo"),
])
def test_tar_links_devices_and_fifos_are_refused(hub, env, tmp_path, kind, link, needle):
    archive = tarred(tar_member("other.jsonl", jsonl(ALPACA)), tar_member("data.jsonl", kind=kind, link=link))
    hub.publish("evil/tar", {"data.tar.gz": archive})
    before = local_files(tmp_path)
    refused(cli(env, "download", "evil/tar", "-o", tmp_path / "out.jsonl"), needle, "refusing the archive")
    assert local_files(tmp_path) == before  # no output, no link, no device node


@pytest.mark.parametrize("name", ["/tmp/abs.jsonl", "../up.jsonl", "a/../../up.jsonl"])
def test_tar_member_names_that_leave_the_folder_are_refused(hub, env, tmp_path, name):
    hub.publish("evil/tar-names", {"data.tar": tarred(tar_member(name, jsonl(ALPACA)), compression="")})
    refused(cli(env, "download", "evil/tar-names", "-o", tmp_path / "out.jsonl"), "refusing the archive")
    assert not (tmp_path / "out.jsonl").exists() and not Path("/tmp/abs.jsonl.jsonl").exists()


_SEGMENT = st.sampled_from(["..", ".", "", "a", "b.jsonl", "c.parquet", "d.json.gz", "\\", "C:", "~", "x\\..\\y.jsonl"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join), min_size=1, max_size=4, unique=True),
       as_tar=st.booleans())
def test_no_member_name_reaches_outside_the_private_folder(tmp_path_factory, names, as_tar):
    """Whatever the member names, staging either refuses the archive or writes only inside its own folder."""
    from instructgen.errors import InstructgenError
    from instructgen.hub.archive import Stager

    root = tmp_path_factory.mktemp("stage")
    data = jsonl(ALPACA[:1])
    payload = {n: gzip.compress(data) if n.endswith(".gz") else data for n in names}
    archive = root / ("data.tar" if as_tar else "data.zip")
    archive.write_bytes(tarred(*(tar_member(n, b) for n, b in payload.items()), compression="") if as_tar
                        else zipped(payload))
    private = root / "private"
    try:
        staged = Stager(private, 10**7).stage(archive.name, str(archive))
    except InstructgenError:
        staged = []
    for item in staged:
        assert Path(item.path).resolve().is_relative_to(private.resolve())
    assert sorted(p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file()) == \
        [archive.name] + ["private"] * len([p for p in private.rglob("*") if p.is_file()])


def test_a_plain_tar_with_dot_slash_names_is_read(hub, env, tmp_path):
    hub.publish("ok/tar", {"data.tgz": tarred(tar_member("./", None, tarfile.DIRTYPE),
                                              tar_member("./part/train.jsonl", jsonl(ALPACA)))})
    r = ok(cli(env, "download", "ok/tar", "--to", "alpaca", "-o", tmp_path / "out.jsonl"))
    assert rows(tmp_path / "out.jsonl") == ALPACA
    assert "data.tgz!./part/train.jsonl: detected format alpaca" in r.err


@pytest.mark.parametrize("container", ["gz", "zip", "tar.gz"])
def test_decompression_bombs_stop_at_max_bytes(hub, env, tmp_path, container):
    bomb = jsonl(ALPACA) + b" " * (24 << 20)  # 24 MB of spaces: a few kB compressed
    blob = {"gz": lambda: gzip.compress(bomb), "zip": lambda: zipped({"train.jsonl": bomb}),
            "tar.gz": lambda: tarred(tar_member("train.jsonl", bomb))}[container]()
    assert len(blob) < 200_000
    hub.publish("evil/bomb", {f"train.jsonl.{container}" if container == "gz" else f"train.{container}": blob})
    out = tmp_path / "out.jsonl"
    refused(cli(env, "download", "evil/bomb", "-o", out, "--max-bytes", "1MB"),
            "larger than --max-bytes 1.0 MB once decompressed", "raise --max-bytes")
    assert not out.exists()
    # the limit is the user's to raise: the same repo then reads (the spaces are blank lines)
    ok(cli(env, "download", "evil/bomb", "-o", out, "--max-bytes", "100MB", "--to", "alpaca"))
    assert rows(out) == ALPACA


def test_files_larger_than_max_bytes_are_not_even_fetched(hub, env, tmp_path):
    hub.publish("big/set", {"train.jsonl": jsonl(ALPACA * 2000)})
    refused(cli(env, "download", "big/set", "-o", tmp_path / "out.jsonl", "--max-bytes", "10kB"), "--max-bytes")
    assert not hub.requests_of("resolve") and not hub.requests_of("resolve_head")


def test_records_past_max_records_are_an_error_the_user_can_lift(hub, env, tmp_path):
    many = [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(30)]
    hub.publish("big/rows", {"train.jsonl": jsonl(many)})
    out = tmp_path / "out.jsonl"
    refused(cli(env, "download", "big/rows", "-o", out, "--max-records", "10"), "more than --max-records 10")
    assert not out.exists()
    ok(cli(env, "download", "big/rows", "-o", out, "--max-records", "30"))
    assert rows(out) == many


def card(configs: list[dict]) -> bytes:
    return b"---\n" + yaml.safe_dump({"license": "mit", "configs": configs}).encode() + b"---\n# a set\n"


@pytest.mark.parametrize("pattern", ["/etc/*", "../other/*.jsonl", "data/../../x.jsonl", "hf://datasets/a/b/*.jsonl",
                                     "C:/data/*.jsonl"])
def test_card_data_files_that_leave_the_repo_are_refused(hub, env, tmp_path, pattern):
    hub.publish("evil/card", {"README.md": card([{"config_name": "main", "data_files": [
        {"split": "train", "path": pattern}]}]), "train.jsonl": jsonl(ALPACA)})
    refused(cli(env, "download", "evil/card", "-o", tmp_path / "out.jsonl"), "refusing", "must stay inside the repo")
    assert not hub.requests_of("resolve")


def test_repo_file_names_that_leave_the_repo_are_refused(hub, env, tmp_path):
    hub.publish("evil/names", {"../../train.jsonl": jsonl(ALPACA)})
    refused(cli(env, "download", "evil/names", "-o", tmp_path / "out.jsonl"), "refusing '../../train.jsonl'")
    assert not hub.requests_of("resolve")


def test_unknown_config_lists_the_configs_with_or_without_a_configs_section(hub, env, tmp_path):
    hub.publish("me/two", {"README.md": card([{"config_name": "en", "data_files": "en/*.jsonl"},
                                              {"config_name": "zh", "data_files": "zh/*.jsonl"}]),
                           "en/train.jsonl": jsonl(ALPACA[:2]), "zh/train.jsonl": jsonl(ALPACA[2:])})
    refused(cli(env, "download", "me/two", "--config", "fr", "-o", tmp_path / "a.jsonl"),
            "no config 'fr'; the card lists: en, zh")
    hub.publish("me/plain", {"README.md": b"# no front matter\n", "train.jsonl": jsonl(ALPACA)})
    refused(cli(env, "download", "me/plain", "--config", "fr", "-o", tmp_path / "b.jsonl"),
            "no config 'fr': the card lists no configs, so the repo has only 'default'")
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
    ok(cli(env, "download", "me/two", "--config", "zh", "--to", "alpaca", "-o", tmp_path / "zh.jsonl"))
    ok(cli(env, "download", "me/plain", "--config", "default", "--to", "alpaca", "-o", tmp_path / "d.jsonl"))
    assert rows(tmp_path / "zh.jsonl") == ALPACA[2:] and rows(tmp_path / "d.jsonl") == ALPACA


def test_rejects_name_the_remote_file_never_the_private_copy(hub, env, tmp_path):
    hub.publish("me/bad-line", {"data.zip": zipped({"train.jsonl": jsonl(ALPACA) + b"{not json\n"})})
    ok(cli(env, "download", "me/bad-line", "--to", "alpaca", "-o", tmp_path / "out.jsonl"))
    (reject,) = rows(tmp_path / "out.rejects.jsonl")
    assert reject["origin"] == f"me/bad-line@{hub.head('me/bad-line')[:12]}/data.zip!train.jsonl:4"
    assert "instructgen-download" not in json.dumps(reject)


# -- 9.7: a lost commit answer; what is published names no local path ----------------------------

@pytest.mark.parametrize("status", [None, 500])
def test_push_after_a_lost_commit_answer_reports_the_commit_that_exists(hub, env, tmp_path, status):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(ALPACA))
    lost = hub.inject("commit", status=status, lost=True)
    r = ok(push(env, [data], "tester/lost", "--formats", "alpaca", cwd=tmp_path))
    assert lost.fired == 1
    head = hub.head("tester/lost")
    assert commit_of(r.out) == head and not r.out.startswith("unchanged")
    assert "answer to the commit was lost" in r.err
    assert len(hub.commits("tester/lost")) == 2, "initial commit + exactly one of ours (no duplicate)"
    assert len(hub.requests_of("commit")) == 1, "the remote was read again instead of committing twice"


def test_a_lost_pull_request_answer_reports_the_pull_request(hub, env, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(ALPACA))
    main = commit_of(ok(push(env, [data], "tester/lost-pr", "--formats", "alpaca", cwd=tmp_path)).out)
    data.write_bytes(jsonl(ALPACA[:2]))
    hub.inject("commit", status=None, lost=True)
    r = ok(push(env, [data], "tester/lost-pr", "--formats", "alpaca", "--create-pr", cwd=tmp_path))
    pr_head = hub.head("tester/lost-pr", "refs/pr/1")
    assert f"/datasets/tester/lost-pr/discussions/1 with commit {pr_head}" in r.out
    assert hub.head("tester/lost-pr") == main and hub.head("tester/lost-pr", "refs/pr/2") is None


def test_a_commit_refused_before_landing_is_sent_again(hub, env, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(ALPACA))
    hub.inject("commit", status=None)  # dropped before the double looked at it
    r = ok(push(env, [data], "tester/again", "--formats", "alpaca", cwd=tmp_path))
    assert "retrying" in r.err and "was lost" not in r.err
    assert commit_of(r.out) == hub.head("tester/again") and len(hub.commits("tester/again")) == 2


def test_the_card_names_no_local_path_user_or_home(hub, env, tmp_path):
    home = tmp_path / "home" / "alice"
    (home / "run").mkdir(parents=True)
    source = home / "private-notes.jsonl"
    source.write_bytes(jsonl(ALPACA))
    stats = home / "run" / "stats.json"
    stats.write_text(json.dumps({
        "sources": [{"path": str(source)}, {"path": str(home / "run" / "local.jsonl")},
                    {"repo": "tatsu-lab/alpaca", "revision": "abc1234", "path": str(home / "dl" / "alpaca.jsonl")}],
        "generation": {"model": "gpt-4o-mini", "seed_tasks": str(home / "seeds" / "en.jsonl"),
                       "cache_dir": "~/cache", "note": f"read from file:{home}/x.jsonl:3"},
        "dedup": {"against": [str(home / "ref" / "test.jsonl")], "threshold": 0.7},
        "stages": [{"stage": f"read:{source}", "in": 3, "out": 3}],
    }))
    r = ok(push(env, [source], "tester/private", "--formats", "alpaca", "--stats", stats,
                "--dry-run", tmp_path / "dry", cwd=tmp_path))
    assert "nothing uploaded" in r.out
    text = (tmp_path / "dry" / "README.md").read_text()
    for leak in (str(tmp_path), "alice", str(Path.home()) + "/", "/home/"):
        assert leak not in text, leak
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    for needle in (f"`private-notes.jsonl` — sha256 `{sha}`", "`local.jsonl`",
                   "`tatsu-lab/alpaca` — revision `abc1234`",
                   '"en.jsonl"', '"cache"', "file:x.jsonl:3", '["test.jsonl"]', "| read:private-notes.jsonl | 3 | 3 |"):
        assert needle in text, needle


def test_render_card_is_pure():
    from instructgen.hub import CardInfo, ConfigCard, SourceInfo, render_card

    configs = [ConfigCard("alpaca", "alpaca", 3, [("instruction", "string")], [ALPACA[0]])]
    info = CardInfo(license="mit", sources=(SourceInfo("a.jsonl", sha256="0" * 64),), languages=("en",))
    assert render_card("me/x", configs, info) == render_card("me/x", configs, info)


# -- 9.2: every path push and download write, checked before anything is opened ---------------

def test_push_dry_run_folder_holding_an_input_is_refused_before_anything_is_written(tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9")
    folder = tmp_path / "dry"
    folder.mkdir()
    data = folder / "data.jsonl"
    data.write_bytes(jsonl(ALPACA))
    refused(push(env, [data], "me/x", "--dry-run", folder, cwd=tmp_path), "is inside --dry-run")
    assert files_under(folder) == {"data.jsonl": jsonl(ALPACA)}
    stats = folder / "stats.json"
    stats.write_text("{}")
    refused(push(env, [tmp_path / "missing.jsonl"], "me/x", "--stats", stats, "--dry-run", folder, cwd=tmp_path),
            f"--stats {stats} is inside --dry-run")


def test_push_rejects_dir_never_overwrites_an_input(tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9")
    rejects = tmp_path / "rej"
    rejects.mkdir()
    data = rejects / "push-read.jsonl"  # an input with the name a rejects file would have
    data.write_bytes(jsonl(ALPACA) + b"{broken\n")
    before = data.read_bytes()
    ok(push(env, [data], "me/x", "--formats", "alpaca", "--rejects-dir", rejects, "--dry-run", tmp_path / "dry",
            cwd=tmp_path))
    assert data.read_bytes() == before
    (moved,) = [p for p in rejects.iterdir() if p != data]
    assert moved.name == "push-read.1.jsonl" and rows(moved)[0]["reason"]


def test_a_second_dry_run_never_deletes_what_it_did_not_write(tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9")
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(ALPACA))
    dry = tmp_path / "dry"
    ok(push(env, [data], "me/x", "--formats", "alpaca", "--shard-rows", "1", "--dry-run", dry, cwd=tmp_path))
    first = files_under(dry)
    assert len([f for f in first if f.endswith(".parquet")]) == 3
    refused(push(env, [data], "me/x", "--formats", "alpaca", "--dry-run", dry, cwd=tmp_path),
            "already holds alpaca/train-00000-of-00003.parquet, alpaca/train-00001-of-00003.parquet",
            "from an earlier run")
    assert files_under(dry) == first


@pytest.mark.parametrize("flags,needle", [
    (["--stats", "{out}"], "are the same file"),
    (["--rejects", "{out}"], "are the same file"),
    (["--rejects", "{tmp}/r.jsonl", "--stats", "{tmp}/r.jsonl"], "are the same file"),
])
def test_download_outputs_that_collide_are_refused_before_the_hub_is_asked(hub, env, tmp_path, flags, needle):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"keep me\n")
    args = [f.format(out=out, tmp=tmp_path) for f in flags]
    refused(cli(env, "download", "alpaca", "-o", out, *args), needle)
    assert out.read_bytes() == b"keep me\n" and not hub.requests


# -- the one retry policy ------------------------------------------------------------------------

class _Failure(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.response = type("R", (), {"status_code": status, "headers": {}})()


@pytest.mark.parametrize("status,calls", [(503, 3), (429, 3), (404, 1), (401, 1)])
def test_retry_policy_retries_only_transient_failures(status, calls):
    from instructgen.hub import RetryPolicy

    seen = []

    def flaky():
        seen.append(1)
        if len(seen) < 3:
            raise _Failure(status)
        return "done"

    policy = RetryPolicy(attempts=4, first_wait=0, max_wait=0)
    if calls == 1:
        with pytest.raises(_Failure):
            policy.call(flaky, "test")
    else:
        assert policy.call(flaky, "test") == "done"
    assert len(seen) == calls


def test_transient_info_failures_are_retried_end_to_end(hub, env, tmp_path):
    hub.publish("me/flaky", {"train.jsonl": jsonl(ALPACA)})
    hub.inject("info", status=429, times=2)
    r = ok(cli(env, "download", "me/flaky", "--to", "alpaca", "-o", tmp_path / "out.jsonl"))
    assert r.err.count("retrying") == 2 and rows(tmp_path / "out.jsonl") == ALPACA
