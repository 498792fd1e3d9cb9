"""`instructgen formats`: the formats, with one example record each."""

from __future__ import annotations

import json

from . import command_parser


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "formats": "list the formats with an example record each",
}


def register(sub) -> None:
    p = command_parser(
        sub, "formats", help=COMMANDS["formats"],
        description="List every format instructgen reads and writes, with one example record.",
        examples="  instructgen formats\n  instructgen formats sharegpt\n  instructgen formats --names\n",
    )
    p.add_argument("name", nargs="?", help="show only this format")
    p.add_argument("--names", action="store_true", help="print only the names, one a line")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import formats

    specs = [formats.get(args.name)] if args.name else list(formats.registry().values())
    for spec in specs:
        if args.names:
            print(spec.name)
            continue
        mode = "read/write" if spec.writable else "read only"
        refines = f"; a more precise reading of {spec.refines} rows" if spec.refines else ""
        more = [*(["preference data: chosen/rejected, label"] if spec.preference else []),
                *([f"--turns {'|'.join(spec.turns)}"] if spec.turns else [])]
        extra = f"; {'; '.join(more)}" if more else ""
        print(f"{spec.name}  ({mode}{refines}{extra})\n  {spec.description}")
        print("  " + json.dumps(spec.example, ensure_ascii=False) + "\n")
    return 0
