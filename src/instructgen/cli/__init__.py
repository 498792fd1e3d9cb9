"""`instructgen`: the command line, a thin layer over the stages.

Each command lives in its own module under `instructgen.cli` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Commands of other packages join through the `instructgen.commands` entry
point (the flows package brings `run` and `serve`), so the library never
imports its orchestration layer. Modules import heavy libraries inside `func`
only, so `instructgen convert --help` starts fast and never imports Prefect.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from importlib.metadata import entry_points

from ..errors import InstructgenError

# the order here is the order of `instructgen --help`; entry-point commands (run, serve) come after formats
COMMAND_MODULES = ("convert", "validate", "formats", "generate", "hub", "curate", "score")
ENTRY_POINT_GROUP = "instructgen.commands"

DESCRIPTION = """\
Build instruction-tuning data end to end: generate it (Self-Instruct), collect
published sets, convert between trainer formats, curate (dedup + quality
filters) and publish to the Hugging Face Hub.

Start here:
  instructgen formats                      the formats, with an example record each
  instructgen convert data.json --to moss  convert (the input format is detected)
  instructgen <command> --help             what a command does, with examples
"""


def command_modules() -> list:
    """The modules that add commands: ours, then those of other packages (entry point `instructgen.commands`)."""
    ours = [importlib.import_module(f"{__name__}.{name}") for name in COMMAND_MODULES]
    theirs = [entry.load() for entry in entry_points(group=ENTRY_POINT_GROUP)]
    return ours[:3] + theirs + ours[3:]  # run and serve right after formats in --help


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser. With `argv`, only the command it names gets its full set of flags (others are listed with
    their one-line help): building every command's flags imports numpy and the stage configs, which a
    command that does not need them should not pay for. Without `argv`, every command is built."""
    parser = argparse.ArgumentParser(
        prog="instructgen", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    wanted = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for module in command_modules():
        if argv is None or wanted in module.COMMANDS:
            module.register(sub)
        else:
            for name, help in module.COMMANDS.items():
                sub.add_parser(name, help=help)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit, a write fails with EFBIG (one line) instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InstructgenError as e:
        print(f"instructgen {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `instructgen formats | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second failure at exit
        return 0
    except OSError as e:  # a file that cannot be read or written: say which, without a traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"instructgen {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"instructgen {args.command}: interrupted", file=sys.stderr)
        return 130


def command_parser(sub, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand parser whose --help ends with worked examples."""
    return sub.add_parser(
        name, help=help, description=description, epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


if __name__ == "__main__":
    sys.exit(main())
