"""`instructgen convert`: rows of one format into another."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import command_parser

EXAMPLES = """\
  instructgen convert data.json --to moss                 writes data.moss.jsonl
  instructgen convert a.jsonl b.parquet --to sharegpt -o all.json
  instructgen convert adgen.jsonl --from chatglm --columns prompt=content,response=summary --to alpaca -o out.jsonl
  cat data.jsonl | instructgen convert - --to openai -o - > openai.jsonl
  instructgen convert chat.jsonl --to chatglm --explode-turns -o per_turn.jsonl
  instructgen convert chat.jsonl --to alpaca --strict -o out.jsonl      fail instead of dropping history

Losses (history into a single-turn format, system prompts, tools, MOSS plugin
fields) are applied and counted on stderr; records that cannot be read go to
OUTPUT.rejects.jsonl with file, line, reason and the raw text. Information the
target has no field for travels in a top-level "meta" object (--no-meta to drop it).
"""


def register(sub) -> None:
    from ..formats import names

    p = command_parser(
        sub, "convert", help="convert between instruction-data formats",
        description="Convert instruction data between trainer formats through one canonical record. "
        "The input format is detected per file (the choice is printed) unless --from is given. "
        "Formats: " + ", ".join(names()) + " (see `instructgen formats`).",
        examples=EXAMPLES,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".json (array or JSONL), .jsonl, .jsonl.gz, .parquet, or - for stdin (JSONL)")
    p.add_argument("--to", required=True, metavar="FORMAT", choices=names(writable_only=True), help="target format")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", choices=names(),
                   help="input format (default: detect per file)")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output file; its extension picks the type (.jsonl, .jsonl.gz, .json, .parquet) or - for stdout. "
                   "Default: INPUT.FORMAT.jsonl beside the first input")
    p.add_argument("--rejects", metavar="PATH", help="where unreadable records go (default: OUTPUT.rejects.jsonl)")
    p.add_argument("--stats", metavar="PATH", help="also write the counts to this stats.json")
    p.add_argument("--strict", action="store_true", help="any loss or rejected record is an error (nothing is written)")
    p.add_argument("--explode-turns", action="store_true",
                   help="chatglm: one row per assistant turn with a growing history")
    p.add_argument("--merge-turns", action="store_true",
                   help="when reading: a row whose conversation is the start of the next row's is merged into it")
    p.add_argument("--columns", metavar="FIELD=COLUMN,...",
                   help="column names differ from the format's field names, e.g. prompt=content,response=summary")
    p.add_argument("--meta-instruction-file", metavar="FILE",
                   help="moss: the meta instruction for records that carry no system prompt")
    p.add_argument("--no-meta", action="store_true", help='do not write the "meta" object with fields the target lacks')
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4), metavar="N",
                   help="processes for large JSONL inputs written as JSONL (default: %(default)s, the CPU count up to 4; "
                   "1 = no pool)")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")
    p.set_defaults(func=run)


def default_output(first_input: str, to_format: str) -> str:
    if first_input == "-":
        return "-"
    name = Path(first_input).name
    for suffix in (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return str(Path(first_input).with_name(f"{name}.{to_format}.jsonl"))


def default_rejects(output: str) -> str:
    if output == "-":
        return "rejects.jsonl"
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if output.endswith(suffix):
            return output[: -len(suffix)] + ".rejects.jsonl"
    return output + ".rejects.jsonl"


def run(args) -> int:
    from ..convert import ReadOptions, convert, parse_columns
    from ..errors import InstructgenError
    from ..formats.base import DumpOptions
    from ..runlog import RunLog, write_stats

    output = args.output or default_output(args.inputs[0], args.to)
    if output != "-" and any(os.path.abspath(output) == os.path.abspath(i) for i in args.inputs):
        raise InstructgenError(f"output {output} is also an input; choose another -o")
    meta_instruction = None
    if args.meta_instruction_file:
        try:
            meta_instruction = Path(args.meta_instruction_file).read_text(encoding="utf-8")
        except OSError as e:
            raise InstructgenError(f"--meta-instruction-file: cannot read {args.meta_instruction_file}: {e.strerror}")
    columns = parse_columns(args.columns)
    log = RunLog("convert", args.rejects or default_rejects(output))
    progress = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        convert(
            args.inputs, output, args.to, log,
            ReadOptions(from_format=args.from_format, columns=columns, merge_turns=args.merge_turns, strict=args.strict),
            DumpOptions(meta_instruction=meta_instruction, explode_turns=args.explode_turns, columns=columns,
                        keep_meta=not args.no_meta),
            progress=progress, workers=args.workers,
        )
    finally:
        log.close()
    if output != "-":
        print(f"wrote {log.n_out} records to {output}", file=sys.stderr)
    log.print_summary()
    if args.stats:
        write_stats(args.stats, [log])
    return 0
