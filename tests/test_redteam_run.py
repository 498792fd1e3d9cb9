"""Red team, issue 9 §1 and §7: `instructgen run` works on the first try on a fresh machine, from a wheel,
and refuses bad configs and unsafe output folders in one line, before Prefect starts."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], cwd: Path, env: dict | None = None, exe: str | None = None, timeout: int = 600):
    cmd = [exe, *args] if exe else [sys.executable, "-m", "instructgen.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "prefect" not in result.stderr.lower(), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_config(folder: Path, source: str) -> Path:
    path = folder / "p.toml"
    path.write_text(f'[pipeline]\nformats = ["alpaca"]\n\n[[sources]]\npath = "{REPO / "data/samples/alpaca.jsonl"}"\n\n'
                    f'[[sources]]\npath = "{source}"\n', encoding="utf-8")
    return path


def test_a_missing_source_is_one_line_with_key_and_line(tmp_path):
    cfg = write_config(tmp_path, "nowhere.jsonl")
    line = one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))
    assert f"{cfg}:8: sources[1].path:" in line and "no such file" in line
    assert not (tmp_path / "out").exists()


def test_a_folder_source_is_one_line(tmp_path):
    (tmp_path / "adir").mkdir()
    cfg = write_config(tmp_path, "adir")
    line = one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))
    assert "sources[1].path" in line and "folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_source_is_one_line(tmp_path):
    (tmp_path / "secret.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "secret.jsonl").chmod(0)
    cfg = write_config(tmp_path, "secret.jsonl")
    assert "permission denied" in one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))


def test_a_config_that_is_a_folder_is_one_line(tmp_path):
    assert "is a folder" in one_line_error(run_cli(["run", str(tmp_path), "-o", "out"], tmp_path))


def test_an_output_folder_holding_an_input_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    src = tmp_path / "out" / "mine.jsonl"
    src.write_bytes((REPO / "data/samples/alpaca.jsonl").read_bytes())
    cfg = write_config(tmp_path, str(src))
    line = one_line_error(run_cli(["run", str(cfg), "-o", "out"], tmp_path))
    assert "inside the output folder" in line
    assert src.read_bytes() == (REPO / "data/samples/alpaca.jsonl").read_bytes()


def test_the_readme_main_job_from_a_wheel_twice_with_a_fresh_prefect_home(tmp_path):
    """Build a wheel, install it apart from the checkout, and run `instructgen run` in an empty folder with a
    fresh PREFECT_HOME (Prefect creates and migrates its database on this first start), then once more."""
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("instructgen-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)  # ensurepip: offline
    python = str(env_dir / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True).stdout.strip()
    # the dependencies come from this interpreter's site-packages, listed in a .pth file; their own .pth files
    # (the editable install of the checkout among them) are not processed, so the checkout stays out of sight
    (Path(purelib) / "deps-from-the-test-machine.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    where = subprocess.run([python, "-c", "import instructgen_data, instructgen; print(instructgen_data.__file__); "
                            "print(instructgen.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert str(env_dir) in where.stdout and str(REPO) not in where.stdout, where.stdout + where.stderr

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "fresh-prefect-home"), PATH=f"{env_dir / 'bin'}:{env['PATH']}")
    for attempt in (1, 2):
        result = subprocess.run([str(env_dir / "bin" / "instructgen"), "run"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"attempt {attempt}: " + result.stdout[-2000:] + result.stderr[-3000:]
        assert "starting Prefect's temporary local server" in result.stderr
        stats = orjson.loads((work / "instructgen-output" / "stats.json").read_bytes())
        assert stats["balanced"] is True and stats["stages"][0]["in"] > 0



def test_an_output_folder_inside_a_folder_source_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_bytes((REPO / "data/samples/alpaca.jsonl").read_bytes())
    cfg = write_config(tmp_path, str(tmp_path / "raw"))
    line = one_line_error(run_cli(["run", str(cfg), "-o", "raw/out"], tmp_path))
    assert "read as input" in line and not (tmp_path / "raw" / "out").exists()
