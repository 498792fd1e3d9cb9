"""Shared fixtures. Real public samples are read from ../shared/data when it exists (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INSTRUCTGEN_SHARED", REPO.parent / "shared"))
SAMPLES = REPO / "data" / "samples"


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data; the calling test is skipped when it is not there."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"shared sample data not available: {path}")
    return path


def shared_files(folder: str) -> list[Path]:
    """Every file in ../shared/data/<folder>, or [] when ../shared is absent (parametrized tests then skip)."""
    root = SHARED / "data" / folder
    return sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    old = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def prefect(prefect_home):
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
