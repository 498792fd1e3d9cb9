"""`instructgen dedup`, `instructgen filter`, `instructgen stats`: curation commands."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys

from ..errors import InstructgenError
from ..paths import CommandPaths
from ..progress import add_progress_flag, bar_maker, tracked, wanted as progress_wanted
from . import command_parser

DEDUP_EXAMPLES = """\
  instructgen dedup data.jsonl -o clean.jsonl
  instructgen dedup a.json b.parquet -o all.jsonl --fields instruction --threshold 0.8
  instructgen dedup train.jsonl -o train.dedup.jsonl --against test.jsonl --clusters clusters.jsonl
  instructgen dedup generated.jsonl -o fresh.jsonl --against published.jsonl --against-only

Exact duplicates go first (same text up to Unicode NFKC, case, whitespace and punctuation; tool names
and arguments count), then near duplicates by MinHash/LSH. By default (--fields prompt,response) two
records are near duplicates only when their prompts (tool definitions, user turns, tool results) and
their responses (assistant turns, tool calls) are each near-identical, so records sharing a tool
description, passage or template but asking something else are kept; numbers, URLs, quoted literals
and tool calls must match too (--no-identifiers, --no-tool-calls relax that). Candidates are verified
(estimated Jaccard >= --threshold) and one record is kept per cluster (the first, or the longest with
--keep longest); a removed record never pulls others in. Removed records go to OUTPUT.rejects.jsonl;
--clusters writes each removed record with the one it duplicates, both texts and a word diff, for review.
"""

FILTER_EXAMPLES = """\
  instructgen filter data.jsonl -o clean.jsonl
  instructgen filter SFT_data/ --glob '*.json' -o clean.jsonl          a folder (recursively), or 'data/**/*.json'
  instructgen filter data.jsonl -o clean.jsonl --lang zh,en --drop language
  instructgen filter data.jsonl -o clean.jsonl --drop refusal,needs_media,language,length
  instructgen filter data.jsonl -o clean.jsonl --rules default,-salad

Junk is dropped (a dialogue is cut before a junk turn; the removed turns go to the rejects file, kind cut):
  empty_output  empty, whitespace or "N/A" output           echo         output equal to the instruction/input
  garbled       U+FFFD, control chars, mojibake, <UNK>       placeholder  unfilled {{name}}, [INSERT ...]
  repetition    loops of a token, a line or a sentence       salad        token salad (not words of its language)
Signals are flagged in each record's meta.flags, and dropped only when --drop names them:
  refusal       a non-answer: an AI disclaimer or refusal    needs_media  needs an image/file/URL it does not carry
  language      not in --lang, or answered in another one    length       too short (one-turn records) or too long
  merged        several tasks in one                         safety_refusal (opt-in) refusing a harmful request
"""

STATS_EXAMPLES = """\
  instructgen stats data.jsonl
  instructgen stats a.json b.parquet --json stats.json
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "dedup": "remove exact and near-duplicate records",
    "filter": "drop junk records and flag doubtful ones, by named rules",
    "stats": "counts, language mix and length percentiles of a dataset",
}


def register(sub) -> None:
    from ..curate.dedup import DedupConfig
    from ..curate.filter import FilterConfig
    from ..curate.langid import DETECTORS
    from ..formats import FORMAT_MODULES
    from .options import add_options

    p = command_parser(sub, "dedup", help=COMMANDS["dedup"],
                       description="Remove exact and near-duplicate records (MinHash/LSH), optionally "
                       "against a reference set. The input is read twice: pass 1 keeps a sketch of each record "
                       "(about 540 bytes, not the record), pass 2 writes the survivors; big JSONL files use "
                       "every core.", examples=DEDUP_EXAMPLES)
    _common(p, FORMAT_MODULES)
    p.add_argument("--glob", metavar="PATTERN", help="in folders, read only the files whose name matches PATTERN "
                   "(e.g. '*.json'); default: every .json, .jsonl, .jsonl.gz and .parquet file")
    p.add_argument("--clusters", metavar="PATH", help="write every removed record -> the record it duplicates (JSONL)")
    p.add_argument("--signatures", metavar="DIR", help="keep pass 1's signatures here (Parquet, about 540 bytes a "
                   "record) and reuse them when the same file is deduplicated again with the same sketch settings: "
                   "another --threshold or --keep, or the file as an --against reference, skips pass 1")
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                   help="run both passes on a Dask cluster: tcp://host:8786 of a running dask-scheduler, or no "
                   "address for a LocalCluster on this machine (one worker per core, or --workers). The workers "
                   "read the inputs by path: on several machines they must be on storage every worker sees. The "
                   "output is byte-identical to a run without --dask. Put it after the inputs (or write --dask=local): "
                   "the word after it is taken for an address")
    add_options(p.add_argument_group("dedup settings (the [dedup] section of a pipeline config)"), DedupConfig)
    p.set_defaults(func=run_dedup)

    p = command_parser(sub, "filter", help=COMMANDS["filter"],
                       description="Drop junk (empty, garbled, looping, token salad, unfilled placeholders, echoes) "
                       "and flag doubtful records (refusal, media, language, length) in meta.flags; each drop, cut "
                       "and flag is counted per rule, drops and cut turns are kept in the rejects file with the "
                       "reason.", examples=FILTER_EXAMPLES)
    _common(p, FORMAT_MODULES)
    p.add_argument("--glob", metavar="PATTERN", help="in folders, read only the files whose name matches PATTERN "
                   "(e.g. '*.json'); default: every .json, .jsonl, .jsonl.gz and .parquet file")
    add_options(p.add_argument_group("filter settings (the [filter] section of a pipeline config)"), FilterConfig)
    p.set_defaults(func=run_filter)

    p = command_parser(sub, "stats", help=COMMANDS["stats"],
                       description="Print counts, language mix and length percentiles of any dataset.",
                       examples=STATS_EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".json, .jsonl, .jsonl.gz, .parquet, or - for stdin")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", choices=FORMAT_MODULES, help="input format (default: detect)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    p.add_argument("--detector", choices=DETECTORS, default="script+langdetect", help="language detector")
    p.add_argument("--lang-sample", type=int, default=20000, metavar="N",
                   help="detect the language of the first N records (default 20000)")
    p.set_defaults(func=run_stats)


def _common(p, formats) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".json, .jsonl, .jsonl.gz, .parquet, or - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file (its extension picks the type) or -")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", choices=formats, help="input format (default: detect per file)")
    p.add_argument("--to", metavar="FORMAT", choices=formats, help="output format (default: the input's)")
    p.add_argument("--rejects", metavar="PATH", help="dropped records (default: OUTPUT.rejects.jsonl)")
    p.add_argument("--stats", metavar="PATH", help="stats.json to write/merge into (default: OUTPUT.stats.json)")
    add_progress_flag(p)


def _paths(args, against: list[str] = (), clusters: str | None = None, signatures: str | None = None
           ) -> tuple[str, str | None]:
    """(rejects, stats): every path this command writes, checked against every input before anything is opened."""
    from .options import plan_rejects_and_stats

    plan = CommandPaths()
    plan.read_all(args.inputs)
    plan.read_all(against, "--against")
    rejects, stats = plan_rejects_and_stats(plan, args)
    if clusters:
        plan.write(clusters, "--clusters")
    if signatures:
        plan.write_folder(signatures, "--signatures")
    plan.check()
    return rejects, stats


def _target_format(args, records) -> str:
    if args.to:
        return args.to
    found = sorted({c.source_format for c in records})
    if len(found) > 1:
        raise InstructgenError(f"inputs are in several formats ({', '.join(found)}); choose the output's with --to")
    return found[0] if found else (args.from_format or "alpaca")


def _finish(args, log, stats_path, table: list[tuple[str, int]] | None = None) -> None:
    from ..runlog import write_stats

    if args.output != "-":
        print(f"wrote {log.n_out} records to {args.output}", file=sys.stderr)
    if table:
        width = max(len(name) for name, _ in table)
        print(f"{'rule':<{width}}  dropped", file=sys.stderr)
        for name, n in table:
            print(f"{name:<{width}}  {n:>7}", file=sys.stderr)
    log.print_summary()
    if stats_path:
        write_stats(stats_path, [log])


def run_dedup(args) -> int:
    from ..curate.dedup_toolkit import DedupConfig
    from ..inputs import expand_inputs
    from ..runlog import RunLog
    from .options import config_from_args

    config = config_from_args(DedupConfig, args)
    _check_dask_address(args.dask)
    args.inputs = expand_inputs(args.inputs, args.glob)
    against = [str(p) for p in config.against]
    if config.against_only and not against:
        raise InstructgenError("--against-only needs --against REF...")
    rejects, stats_path = _paths(args, against, args.clusters, args.signatures)
    log = RunLog("dedup", rejects)
    if args.inputs.skipped:  # said on stderr by expand_inputs; counted in stats.json too
        log.info["inputs_skipped"] = {reason: len(names) for reason, names in args.inputs.skipped.items()}
    try:
        if "-" in args.inputs:  # stdin cannot be read twice: held in memory
            if args.dask:
                raise InstructgenError("--dask: the workers read the inputs by path; stdin (-) cannot be one")
            _dedup_in_memory(args, config, against, log)
        else:
            _dedup_streaming(args, config, against, log)
    finally:
        log.close()
    _finish(args, log, stats_path)
    if args.clusters:
        print(f"clusters (removed -> kept) are in {args.clusters}", file=sys.stderr)
    return 0


def _check_dask_address(address: str | None) -> None:
    if address and address != "local" and "://" not in address and not re.fullmatch(r"[\w.\-]+:\d+", address):
        raise InstructgenError(f"--dask {address}: not a scheduler address (tcp://host:8786 or host:8786); --dask "
                               "takes the word after it for one, so put it after the inputs or write --dask=local")


def _dedup_streaming(args, config, against: list[str], log) -> None:
    from ..curate.dedup_toolkit import LocalRunner, dedup_files
    from ..io import RowWriter

    if args.dask:
        from ..curate.dedup_dask import DaskRunner

        runs = DaskRunner(args.dask, workers=config.workers or None)
    else:
        runs = contextlib.nullcontext(LocalRunner(config.workers or (os.cpu_count() or 1)))
    with runs as runner, RowWriter(args.output, stable_keys=True) as writer:
        if args.dask:
            print(runner.describe(), file=sys.stderr)
        reviews = RowWriter(args.clusters) if args.clusters else None
        try:
            outcome = dedup_files(args.inputs, writer, config, log, from_format=args.from_format, to_format=args.to,
                                  against=against, reviews=reviews, signatures=args.signatures, runner=runner,
                                  progress=bar_maker(progress_wanted(args.progress)),
                                  announce=lambda m: print(m, file=sys.stderr))
        except BaseException:
            if reviews is not None:
                reviews.abort()
            raise
        if reviews is not None:
            reviews.close()
    _parquet_notes(writer, log)
    if outcome.reused:
        print(f"signatures reused for {', '.join(outcome.reused)}", file=sys.stderr)


def _dedup_in_memory(args, config, against: list[str], log) -> None:
    from ..convert import ReadOptions, read_records, write_records
    from ..curate.dedup_toolkit import dedup_records
    from ..io import RowWriter
    from ..runlog import RunLog

    reference = []
    if against:
        ref_log = RunLog("dedup-reference")
        reference = list(read_records(against, ref_log, ReadOptions(from_format=None)))
        if ref_log.dropped["rejected"]:
            print(f"reference: {ref_log.dropped['rejected']} unreadable rows ignored", file=sys.stderr)
        print(f"reference: {len(reference)} records from {', '.join(against)}", file=sys.stderr)
    read = read_records(args.inputs, log, ReadOptions(from_format=args.from_format))
    records = list(tracked(read, args.progress, "read"))
    kept = dedup_records(records, config, log, against=reference, clusters_path=args.clusters)
    to_format = _target_format(args, records)
    with RowWriter(args.output, stable_keys=True) as writer:
        write_records(kept, writer, to_format, log)
    _parquet_notes(writer, log)


def run_filter(args) -> int:
    from ..convert import ReadOptions, read_records, write_records
    from ..curate.filter import FilterConfig, filter_records
    from ..inputs import expand_inputs
    from ..io import RowWriter
    from ..runlog import RunLog
    from .options import config_from_args

    config = config_from_args(FilterConfig, args)
    args.inputs = expand_inputs(args.inputs, args.glob)  # folders and patterns, as convert reads them
    rejects, stats_path = _paths(args)
    log = RunLog("filter", rejects)
    try:
        read = read_records(args.inputs, log, ReadOptions(from_format=args.from_format))
        records = tracked(read, args.progress, "filter")
        first, records = _peek(records)
        to_format = args.to or (first.source_format if first else args.from_format or "alpaca")
        with RowWriter(args.output, stable_keys=True) as writer:
            write_records(_same_format(filter_records(records, config, log), to_format, args.to), writer, to_format, log)
        _parquet_notes(writer, log)
    finally:
        log.close()
    _print_filter_table(log.info)
    _finish(args, log, stats_path)
    return 0


def _print_filter_table(info: dict) -> None:
    """Per rule: records dropped, dialogues cut, records flagged (signals are only flagged unless --drop names them)."""
    dropped, cut, flagged = info["filter_rules"], info["filter_truncated"], info["filter_flags"]
    names = sorted({*dropped, *cut, *flagged}, key=lambda n: (-(dropped[n] + cut[n] + flagged[n]), n))
    if not names:
        return
    width = max(len(n) for n in names)
    print(f"{'rule':<{width}}  dropped      cut  flagged", file=sys.stderr)
    for name in names:
        cells = [dropped[name] if name in dropped else "-", cut[name] if name in dropped else "-",
                 flagged[name] if name in flagged else "-"]
        print(f"{name:<{width}}  " + "  ".join(f"{c:>7}" for c in cells), file=sys.stderr)


def _parquet_notes(writer, log) -> None:
    """Columns a Parquet output stores as JSON text (mixed types, free-form objects): said and recorded."""
    for note in writer.notes:
        print(note, file=sys.stderr)
    if writer.notes:
        log.info["parquet"] = list(writer.notes)


def _peek(records):
    it = iter(records)
    first = next(it, None)
    return first, (itertools.chain([first], it) if first is not None else iter(()))


def _same_format(records, to_format: str, explicit: str | None):
    for conv in records:
        if explicit is None and conv.source_format != to_format:
            raise InstructgenError(f"{conv.origin}: inputs are in several formats ({to_format}, {conv.source_format}); "
                                   "choose the output's with --to")
        yield conv


def run_stats(args) -> int:
    from ..convert import ReadOptions, read_records
    import orjson

    from ..curate.stats import dataset_stats, format_stats
    from ..io import write_text_atomic
    from ..runlog import RunLog

    if args.json:
        plan = CommandPaths()
        plan.read_all(args.inputs)
        plan.write(args.json, "--json")
        plan.check()
    log = RunLog("stats")
    stats = dataset_stats(read_records(args.inputs, log, ReadOptions(from_format=args.from_format)),
                          detector=args.detector, lang_sample=args.lang_sample)
    if log.dropped["rejected"]:
        stats["unreadable_rows"] = log.dropped["rejected"]
    print(format_stats(stats))
    if log.dropped["rejected"]:
        print(f"unreadable rows (not counted above): {log.dropped['rejected']}", file=sys.stderr)
    if args.json:
        write_text_atomic(args.json, orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
