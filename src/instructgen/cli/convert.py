"""`instructgen convert`: rows of one format into another."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import InstructgenError
from ..paths import CommandPaths, derived
from ..progress import add_progress_flag, wanted as progress_wanted
from . import command_parser

EXAMPLES = """\
  instructgen convert data.json --to moss                 writes data.moss.jsonl
  instructgen convert a.jsonl b.parquet --to sharegpt -o all.json
  instructgen convert SFT_data/ --glob '*.json' --to openai -o moss.openai.jsonl   a folder, recursively
  instructgen convert dpo_en_demo.json --to alpaca -o dpo.alpaca.jsonl   preference pairs: chosen/rejected
  instructgen convert chat.jsonl --to alpaca --turns explode -o turns.jsonl      one row per turn
  instructgen convert adgen.jsonl --from chatglm --columns prompt=content,response=summary --to alpaca -o out.jsonl
  cat data.jsonl | instructgen convert - --to openai -o - > openai.jsonl
  instructgen convert chat.jsonl --to alpaca --strict -o out.jsonl      fail instead of dropping history

Losses (history into a single-turn format, system prompts, tools, MOSS plugin
fields, a preference pair in a format without one) are applied and counted on
stderr; records that cannot be read go to OUTPUT.rejects.jsonl with file, line,
reason and the raw text. Information the target has no field for (the source's
own extra fields included) travels in a top-level "meta" object, counted per
field (--no-meta leaves it out, counted as lost). Writing MOSS from another
format adds a meta instruction: ours by default, or --meta-instruction-file;
the summary says which and how often.
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "convert": "convert between instruction-data formats",
}


def register(sub) -> None:
    from ..formats import names
    from ..formats.base import TURN_MODES

    p = command_parser(
        sub, "convert", help=COMMANDS["convert"],
        description="Convert instruction data between trainer formats through one canonical record. "
        "The input format is detected per file (the choice is printed) unless --from is given. "
        "Formats: " + ", ".join(names()) + " (see `instructgen formats`).",
        examples=EXAMPLES,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".json (an array, one object, or JSONL), .jsonl, .jsonl.gz, .parquet, a folder (read "
                   "recursively), a quoted pattern such as 'data/**/*.json', or - for stdin (JSONL)")
    p.add_argument("--glob", metavar="PATTERN",
                   help="in folders, read only the files whose name matches PATTERN (e.g. '*.json'); "
                   "default: every .json, .jsonl, .jsonl.gz and .parquet file")
    p.add_argument("--to", required=True, metavar="FORMAT", choices=names(writable_only=True), help="target format")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", choices=names(),
                   help="input format (default: detect per file)")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output file; its extension picks the type (.jsonl, .jsonl.gz, .json, .parquet) or - for stdout. "
                   "Default: INPUT.FORMAT.jsonl beside the first input")
    p.add_argument("--rejects", metavar="PATH", help="where unreadable records go (default: OUTPUT.rejects.jsonl)")
    p.add_argument("--stats", metavar="PATH", help="also write the counts to this stats.json")
    p.add_argument("--strict", action="store_true", help="any loss or rejected record is an error (nothing is written)")
    p.add_argument("--turns", choices=TURN_MODES,
                   help="which turns a format with one prompt per row takes (alpaca, dolly: first (default), "
                   "last, or explode: one row per turn; history, chatglm: explode, with the earlier turns as "
                   "history). A preference record always gives the turn its answers judge; --turns first "
                   "refuses one that judges a later turn")
    p.add_argument("--dataset-info", metavar="PATH",
                   help="also write (or update) the output's entry in LLaMA-Factory's dataset_info.json at PATH: "
                   "formatting, columns, role/observation/function tags, ranking for pairs, kto_tag, media columns, "
                   "file_name relative to PATH's folder (alpaca, history, sharegpt and openai outputs)")
    p.add_argument("--layout", choices=("strict", "preference"),
                   help="openai: OpenAI's own layouts instead of LLaMA-Factory's: strict (only messages and tools; "
                   "meta, extra fields and preference data left out, each counted as lost) or preference (its DPO "
                   "rows: input, preferred_output, non_preferred_output; a record that is not a pair is rejected)")
    p.add_argument("--tags", choices=("human-gpt", "user-assistant"),
                   help="sharegpt: the role tags written, whatever the source's (default: human-gpt, what FastChat "
                   "and LLaMA-Factory's sharegpt default read; user-assistant for a dataset_info.json that "
                   "names those)")
    p.add_argument("--max-explode-growth", type=float, default=10.0, metavar="X",
                   help="--turns explode repeats the earlier turns in every row (history, chatglm), so the output "
                   "grows with the square of the turns: the expected size is printed first, and an output past X "
                   "times the text of its records (and 1 MiB) is refused, nothing written (default: %(default)g; "
                   "0: no cap)")
    p.add_argument("--explode-turns", action="store_true",
                   help="chatglm: one row per assistant turn with a growing history (= --turns explode)")
    p.add_argument("--merge-turns", action="store_true",
                   help="when reading: a row whose conversation is the start of the next row's is merged into it")
    p.add_argument("--columns", metavar="FIELD=COLUMN,...",
                   help="column names differ from the format's field names, e.g. prompt=content,response=summary")
    p.add_argument("--meta-instruction-file", metavar="FILE",
                   help="moss: the meta instruction for records that carry no system prompt")
    p.add_argument("--no-meta", action="store_true",
                   help='write only the fields the target defines: no "meta" object, and not the source\'s own '
                   'extra fields (each is counted as lost)')
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4), metavar="N",
                   help="processes for large JSONL inputs written as JSONL (default: %(default)s, the CPU count up to 4; "
                   "1 = no pool)")
    add_progress_flag(p)
    p.set_defaults(func=run)


def check_turns(to_format: str, turns: str | None) -> None:
    """--turns only where the target has one prompt per row."""
    from .. import formats

    if turns is None or turns in formats.get(to_format).turns:
        return
    takes = [f"{n} ({', '.join(s.turns)})" for n, s in formats.registry().items() if s.turns]
    raise InstructgenError(f"--turns {turns} does not apply to {to_format} (it writes whole conversations); "
                           f"formats that take --turns: {'; '.join(takes)}")


def default_output(first_input: str, to_format: str) -> str:
    return derived(first_input, f"{to_format}.jsonl", stdio_default="-")


def plan_paths(args, inputs: list[str], output: str, output_chosen: bool) -> tuple[str, str, str | None]:
    """(output, rejects, stats) checked against the inputs and each other before anything is opened."""
    plan = CommandPaths()
    plan.read_all(inputs)
    if args.meta_instruction_file:
        plan.read(args.meta_instruction_file, "--meta-instruction-file")
    output = plan.write(output, "-o", chosen=output_chosen)
    rejects = plan.write(args.rejects, "--rejects") if args.rejects else \
        plan.write(derived(output, "rejects.jsonl"), "the default rejects file", chosen=False)
    stats = plan.write(args.stats, "--stats") if args.stats else None
    if args.dataset_info:
        plan.write(args.dataset_info, "--dataset-info")
    plan.check()
    return output, rejects, stats


def say_explode_growth(inputs: list[str], to_format: str, read_opts, dump_opts) -> None:
    """The output size --turns explode will give, from the first records, before anything is written;
    refused up front when it is past the cap."""
    from ..convert import EXPLODE_FLOOR, estimate_explode_growth, too_much_growth

    ratio = estimate_explode_growth(inputs, to_format, read_opts, dump_opts)
    if ratio is None:
        return
    size = sum(os.path.getsize(p) for p in inputs if p != "-")
    why = "; every row repeats the turns before it" if ratio >= 2 else ""
    print(f"--turns explode: expected output about {_megabytes(size * ratio)} from {_megabytes(size)} "
          f"({ratio:.1f}x, measured on the first records{why})", file=sys.stderr)
    cap = dump_opts.max_explode_growth
    if cap and ratio > cap and size * ratio > EXPLODE_FLOOR:
        raise InstructgenError(too_much_growth(ratio, cap, "the first records' rows would hold"))


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


def run(args) -> int:
    from ..convert import NOTES, ReadOptions, convert, explodes, parse_columns
    from ..formats.base import DumpOptions
    from ..inputs import expand_inputs
    from ..runlog import RunLog, write_stats

    check_turns(args.to, args.turns)
    if args.layout and args.to != "openai":
        raise InstructgenError(f"--layout applies to --to openai, not {args.to}")
    if args.tags and args.to != "sharegpt":
        raise InstructgenError(f"--tags applies to --to sharegpt, not {args.to}")
    if args.dataset_info:
        check_dataset_info(args)
    inputs = expand_inputs(args.inputs, args.glob)
    output, rejects, stats = plan_paths(args, inputs, args.output or default_output(args.inputs[0], args.to),
                                        output_chosen=bool(args.output))
    meta_instruction = None
    if args.meta_instruction_file:
        try:
            meta_instruction = Path(args.meta_instruction_file).read_text(encoding="utf-8")
        except OSError as e:
            raise InstructgenError(f"--meta-instruction-file: cannot read {args.meta_instruction_file}: {e.strerror}")
    columns = parse_columns(args.columns)
    log = RunLog("convert", rejects)
    progress = progress_wanted(args.progress)
    read_opts = ReadOptions(from_format=args.from_format, columns=columns, merge_turns=args.merge_turns,
                            strict=args.strict)
    dump_opts = DumpOptions(meta_instruction=meta_instruction, meta_instruction_source=args.meta_instruction_file,
                            explode_turns=args.explode_turns, turns=args.turns, columns=columns,
                            keep_meta=not args.no_meta, extras=not args.no_meta,
                            max_explode_growth=args.max_explode_growth, tags=args.tags,
                            layout=args.layout)
    if explodes(dump_opts):
        say_explode_growth(inputs, args.to, read_opts, dump_opts)
    try:
        convert(inputs, output, args.to, log, read_opts, dump_opts, progress=progress, workers=args.workers)
    finally:
        log.close()
    if output != "-":
        print(f"wrote {log.n_out} records to {output}", file=sys.stderr)
    for what, n in log.info.get(NOTES, {}).items():
        print(f"{what}: {n} record{'s' if n != 1 else ''}", file=sys.stderr)
    log.print_summary()
    if stats:
        write_stats(stats, [log])
    if args.dataset_info and log.n_out:
        write_dataset_info(args.dataset_info, output, args.to, args.tags)
    return 0


def check_dataset_info(args) -> None:
    """--dataset-info before any work: a format and layout LLaMA-Factory reads, into a file."""
    from ..formats.llamafactory import FORMATTING

    if args.to not in FORMATTING:
        raise InstructgenError(f"--dataset-info: LLaMA-Factory does not read {args.to}; write one of "
                               f"{', '.join(FORMATTING)}")
    if args.layout:
        raise InstructgenError(f"--dataset-info: --layout {args.layout} is OpenAI's layout, which LLaMA-Factory "
                               "does not read; leave --layout out")
    if (args.output or "") in ("", "-"):
        raise InstructgenError("--dataset-info needs -o FILE: the entry names the file LLaMA-Factory loads")


def write_dataset_info(info_path: str, output: str, to_format: str, tags: str | None) -> None:
    """The output's entry, made from the keys its rows carry, merged into dataset_info.json."""
    from ..formats import llamafactory
    from ..io import read_rows

    keys: set[str] = set()
    for row in read_rows(output):
        if isinstance(row.data, dict):
            keys.update(row.data)
    if output.endswith(".parquet"):
        import orjson
        import pyarrow.parquet as pq

        meta = pq.read_schema(output).metadata or {}
        text = set(orjson.loads(meta.get(b"instructgen", b"{}")).get("json_columns", {}))
        if text & {"conversations", "messages", "history", "chosen", "rejected"}:
            raise InstructgenError(f"--dataset-info: {output} holds {', '.join(sorted(text))} as JSON text, which "
                                   "LLaMA-Factory would not parse; write .json or .jsonl for it")
    name = llamafactory.dataset_name(output)
    new = llamafactory.entry(to_format, llamafactory.file_name_for(info_path, output), keys, tags)
    replaced = llamafactory.merge(info_path, name, new)
    extras = [k for k in ("ranking",) if new.get(k)] + (["kto_tag"] if "kto_tag" in new["columns"] else [])
    print(f"{info_path}: {'replaced' if replaced else 'wrote'} entry {name!r} (formatting {new['formatting']}"
          f"{', ' + ', '.join(extras) if extras else ''}); train with dataset: {name}", file=sys.stderr)
