"""Temporary files beside their target, and the cleanup of those that dead runs left behind.

Every output is written to `.NAME.HOST-PID.RANDOM.tmp` beside it and renamed into place
(atomic: same folder). A run killed with kill -9 cannot remove its temporaries; the next
start that writes into the same folder does (`remove_stale_temps`, called by `temp_beside`):
a temporary whose process is gone on this host. A temporary of a live process, or of another
host sharing the folder, is never touched.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # mkstemp creates 0600 files; outputs get the mode any new file would
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_MINE: set[str] = set()  # temporaries this process created (its pid may be a dead run's, reused)


def _owner() -> str:
    return f"{_HOST}-{os.getpid()}"


def temp_beside(path: str | os.PathLike) -> str:
    """A new empty temporary file `.NAME.HOST-PID.RANDOM.tmp` beside `path` (same folder, so the final
    rename is atomic). Stale temporaries of dead runs beside `path` are removed first."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_owner()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    _MINE.add(os.path.abspath(tmp))
    return tmp


def temp_name(path: str | os.PathLike, label: str) -> str:
    """The name (not created) of a temporary beside `path` for one piece of this run, e.g. a worker's
    part file: `.NAME.HOST-PID.LABEL.tmp`. `remove_stale_temps(path)` removes it once this process is gone."""
    target = Path(path)
    name = str(target.parent / f".{target.name}.{_owner()}.{re.sub(r'[^A-Za-z0-9_-]', '_', label)}.tmp")
    _MINE.add(os.path.abspath(name))
    return name


def remove_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temporaries in the folder of `path` (`.NAME.HOST-PID.*.tmp`, made by `temp_beside` or
    `temp_name` for any NAME: an output, its rejects file, a Parquet part, a worker's shard) left by runs
    on this host whose process is gone (killed with kill -9, crashed). A temporary of a live process is
    never touched, nor one from another host, nor any other file. Returns the paths removed."""
    folder = Path(path).parent
    pattern = re.compile(rf"\..+\.{re.escape(_HOST)}-(\d+)\.[A-Za-z0-9_-]+\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        m = pattern.fullmatch(name)
        if not m:
            continue
        full = str(folder / name)
        pid = int(m.group(1))
        if pid == os.getpid() and os.path.abspath(full) in _MINE or pid != os.getpid() and _alive(pid):
            continue
        if unlink_quietly(full):
            removed.append(full)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def unlink_quietly(path: str) -> bool:
    _MINE.discard(os.path.abspath(path))
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def finish_temp(tmp: str, path: str | os.PathLike) -> None:
    """Give a finished temporary file the mode a new file would have and move it to `path`."""
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)
    _MINE.discard(tmp)
