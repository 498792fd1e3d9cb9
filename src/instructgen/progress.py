"""Progress bars on stderr: one rule for when they show, one way to draw them.

    add_progress_flag(parser)           --progress auto|always|never (default auto)
    wanted("auto")                      auto: when stderr is a terminal
    bar(records, desc="filter")         a tqdm bar over an iterable (or with total=) on stderr
    bar_maker(enabled)                  make(desc, total, unit) -> a bar, or None when bars are off

tqdm is imported when a bar is drawn (about 60 ms): a command that draws none never pays for it.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Literal

Setting = Literal["auto", "always", "never"]
CHOICES: tuple[str, ...] = ("auto", "always", "never")


def wanted(setting: str) -> bool:
    """Whether bars show: always, never, or (auto) when stderr is a terminal a person watches."""
    return setting == "always" or (setting == "auto" and sys.stderr.isatty())


def add_progress_flag(parser, default: str | None = "auto", help: str = "progress bar on stderr (auto: when "
                      "stderr is a terminal)") -> None:
    parser.add_argument("--progress", choices=CHOICES, default=default, help=help)


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = " rec",
        **options: Any):
    """A tqdm bar on stderr, redrawn at most twice a second; bytes (unit "B") scaled to kB/MB; `options` are
    tqdm's (disable=, dynamic_ncols=)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit == "B", file=sys.stderr,
                mininterval=0.5, **options)


BarMaker = Callable[[str, int, str], Any]


def bar_maker(enabled: bool) -> BarMaker | None:
    """For the passes that open their own bars: `make(desc, total, unit)`, or None when bars are off."""
    if not enabled:
        return None

    def make(desc: str, total: int, unit: str):
        return bar(desc=desc, total=total, unit=unit)

    return make


def tracked(records: Iterable[Any], setting: str, desc: str) -> Iterable[Any]:
    """RECORDS with a bar counting them when the setting wants one, else RECORDS as they are."""
    return bar(records, desc=desc) if wanted(setting) else records
