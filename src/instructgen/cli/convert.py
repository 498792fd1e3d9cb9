"""`instructgen convert`: rows of one format into another."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..paths import OutputPlan, derived
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
    return derived(first_input, f"{to_format}.jsonl", stdio_default="-")


def plan_paths(args, output: str, output_chosen: bool) -> tuple[str, str, str | None]:
    """(output, rejects, stats) checked against the inputs and each other before anything is opened."""
    plan = OutputPlan()
    plan.read_all(args.inputs)
    if args.meta_instruction_file:
        plan.read(args.meta_instruction_file, "--meta-instruction-file")
    output = plan.write(output, "-o", chosen=output_chosen)
    rejects = plan.write(args.rejects, "--rejects") if args.rejects else \
        plan.write(derived(output, "rejects.jsonl"), "the default rejects file", chosen=False)
    stats = plan.write(args.stats, "--stats") if args.stats else None
    plan.check()
    return output, rejects, stats


def run(args) -> int:
    from ..convert import ReadOptions, convert, parse_columns
    from ..errors import InstructgenError
    from ..formats.base import DumpOptions
    from ..runlog import RunLog, write_stats

    output, rejects, stats = plan_paths(args, args.output or default_output(args.inputs[0], args.to),
                                        output_chosen=bool(args.output))
    meta_instruction = None
    if args.meta_instruction_file:
        try:
            meta_instruction = Path(args.meta_instruction_file).read_text(encoding="utf-8")
        except OSError as e:
            raise InstructgenError(f"--meta-instruction-file: cannot read {args.meta_instruction_file}: {e.strerror}")
    columns = parse_columns(args.columns)
    log = RunLog("convert", rejects)
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
    if stats:
        write_stats(stats, [log])
    return 0
