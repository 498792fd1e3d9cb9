"""`instructgen dedup`, `instructgen filter`, `instructgen stats`: curation commands."""

from __future__ import annotations

import os
import sys

from . import command_parser

DEDUP_EXAMPLES = """\
  instructgen dedup data.jsonl -o clean.jsonl
  instructgen dedup a.json b.parquet -o all.jsonl --fields instruction --threshold 0.8
  instructgen dedup train.jsonl -o train.dedup.jsonl --against test.jsonl --clusters clusters.jsonl
  instructgen dedup generated.jsonl -o fresh.jsonl --against published.jsonl --against-only

Exact duplicates go first (same text up to Unicode NFKC, case, whitespace and punctuation), then
near-duplicates by MinHash/LSH: candidates are verified (estimated Jaccard >= --threshold) and one
record is kept per cluster (the first, or the longest with --keep longest); a removed record never
pulls others in, so records that share a template do not chain together. Removed records go to
OUTPUT.rejects.jsonl; --clusters writes removed -> kept pairs with their similarity for review.
"""

FILTER_EXAMPLES = """\
  instructgen filter data.jsonl -o clean.jsonl
  instructgen filter data.jsonl -o clean.jsonl --lang zh,en
  instructgen filter data.jsonl -o clean.jsonl --rules default,-language --min-output-words 3
  instructgen filter data.jsonl -o clean.jsonl --rules refusal,empty_output

Rules (each drop names its reason in OUTPUT.rejects.jsonl):
  empty_output  empty, whitespace or "N/A" output          echo        output equal to instruction/input
  garbled       U+FFFD, control chars, mojibake, 999999999  length      too short/long (words; CJK: characters)
  refusal       "As an AI language model", "作为一个AI语言模型", ... (whole phrases)
  needs_media   needs an image/file/URL ("<Picture Attached>", "the attached photo", "下图")
  merged        several tasks in one (###, Instruction:/Output: markers, numbered tasks)
  repetition    duplicated 5..10-grams or lines in the output (Gopher's shares)
  language      language not in --lang, or a question answered in another language
"""

STATS_EXAMPLES = """\
  instructgen stats data.jsonl
  instructgen stats a.json b.parquet --json stats.json
"""


def register(sub) -> None:
    from ..curate.langid import DETECTORS
    from ..formats import FORMAT_MODULES

    p = command_parser(sub, "dedup", help="remove exact and near-duplicate records",
                       description="Remove exact and near-duplicate records (MinHash/LSH), optionally "
                       "against a reference set.", examples=DEDUP_EXAMPLES)
    _common(p, FORMAT_MODULES)
    p.add_argument("--fields", default="all", metavar="PARTS",
                   help="what to compare, a comma list of: all (every non-system message), instruction (first user "
                   "message), input, output (assistant messages), user, system. Default: all")
    p.add_argument("--threshold", type=float, default=0.7, help="Jaccard similarity to count as a duplicate (default 0.7)")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128; 4 bytes each per record)")
    p.add_argument("--shingle", default="auto", metavar="auto|word:N|char:N",
                   help="auto: words / Han characters as tokens, unigrams up to 64 tokens and 3-grams beyond")
    p.add_argument("--keep", choices=("first", "longest"), default="first", help="which record of a cluster stays")
    p.add_argument("--against", nargs="+", metavar="REF", default=[],
                   help="reference files: records near-duplicating them are dropped; the reference is not changed")
    p.add_argument("--against-only", action="store_true", help="with --against: do not deduplicate the input itself")
    p.add_argument("--no-exact", action="store_true", help="skip the exact stage")
    p.add_argument("--no-near", action="store_true", help="skip the MinHash stage (exact duplicates only)")
    p.add_argument("--clusters", metavar="PATH", help="write every removed record -> the record it duplicates (JSONL)")
    p.add_argument("--workers", type=int, default=0, help="processes for signatures (default: one per core for big inputs)")
    p.set_defaults(func=run_dedup)

    p = command_parser(sub, "filter", help="drop low-quality records by named rules",
                       description="Drop records that trip a quality rule; each drop is counted per rule and "
                       "kept in the rejects file with its reason.", examples=FILTER_EXAMPLES)
    _common(p, FORMAT_MODULES)
    p.add_argument("--lang", metavar="CODES", help="allowed languages, e.g. zh,en (ISO 639-1). Default: any")
    p.add_argument("--rules", default="default", metavar="RULES",
                   help="default, a comma list of rule names, or default,-RULE to leave some out")
    p.add_argument("--detector", choices=DETECTORS, default="script+langdetect",
                   help="language detector (default: script check, then seeded langdetect)")
    from ..curate.rules import FilterConfig

    defaults = FilterConfig()
    for part in ("instruction", "output"):
        for bound in ("min", "max"):
            for unit, what in (("words", "words (space-separated text"), ("chars", "characters (CJK text")):
                value = getattr(defaults, f"{bound}_{part}_{unit}")
                p.add_argument(f"--{bound}-{part}-{unit}", type=int, default=value, metavar="N",
                               help=f"{bound}imum {part} length in {what}; default {value})")
    p.set_defaults(func=run_filter)

    p = command_parser(sub, "stats", help="counts, language mix and length percentiles of a dataset",
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
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto", help="progress bar on stderr")


def _paths(args) -> tuple[str, str | None]:
    from ..errors import InstructgenError
    from .convert import default_rejects

    if args.output != "-" and any(os.path.abspath(args.output) == os.path.abspath(i) for i in args.inputs):
        raise InstructgenError(f"output {args.output} is also an input; choose another -o")
    rejects = args.rejects or default_rejects(args.output)
    stats = args.stats or (None if args.output == "-" else default_rejects(args.output)[: -len(".rejects.jsonl")] + ".stats.json")
    return rejects, stats


def _progress(args, records, desc: str):
    if args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty()):
        from tqdm import tqdm

        return tqdm(records, unit=" rec", desc=desc, file=sys.stderr, mininterval=0.5)
    return records


def _target_format(args, records) -> str:
    from ..errors import InstructgenError

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
    from ..convert import ReadOptions, read_records, write_records
    from ..curate.dedup import DedupConfig, dedup_records
    from ..errors import InstructgenError
    from ..io import RowWriter
    from ..runlog import RunLog

    rejects, stats_path = _paths(args)
    config = DedupConfig(threshold=args.threshold, num_perm=args.num_perm, shingle=args.shingle, fields=args.fields,
                         keep=args.keep, exact=not args.no_exact, near=not args.no_near,
                         against_only=args.against_only, workers=args.workers).check()
    if args.against_only and not args.against:
        raise InstructgenError("--against-only needs --against REF...")
    if args.no_exact and args.no_near:
        raise InstructgenError("--no-exact and --no-near together leave nothing to do")
    log = RunLog("dedup", rejects)
    try:
        reference = []
        if args.against:
            ref_log = RunLog("dedup-reference")
            reference = list(read_records(args.against, ref_log, ReadOptions(from_format=None)))
            if ref_log.dropped["rejected"]:
                print(f"reference: {ref_log.dropped['rejected']} unreadable rows ignored", file=sys.stderr)
            print(f"reference: {len(reference)} records from {', '.join(args.against)}", file=sys.stderr)
        records = list(_progress(args, read_records(args.inputs, log, ReadOptions(from_format=args.from_format)), "read"))
        kept = dedup_records(records, config, log, against=reference, clusters_path=args.clusters)
        to_format = _target_format(args, records)
        with RowWriter(args.output) as writer:
            write_records(kept, writer, to_format, log)
    finally:
        log.close()
    _finish(args, log, stats_path)
    if args.clusters:
        print(f"clusters (removed -> kept) are in {args.clusters}", file=sys.stderr)
    return 0


def run_filter(args) -> int:
    from ..convert import ReadOptions, read_records, write_records
    from ..curate.filter import FilterConfig, filter_records, parse_rules
    from ..io import RowWriter
    from ..runlog import RunLog

    rejects, stats_path = _paths(args)
    langs = tuple(c.strip().lower() for c in args.lang.split(",") if c.strip()) if args.lang else ()
    config = FilterConfig(
        rules=parse_rules(args.rules), languages=langs, detector=args.detector,
        **{f"{b}_{p}_{u}": getattr(args, f"{b}_{p}_{u}") for b in ("min", "max") for p in ("instruction", "output")
           for u in ("words", "chars")},
    )
    log = RunLog("filter", rejects)
    try:
        records = _progress(args, read_records(args.inputs, log, ReadOptions(from_format=args.from_format)), "filter")
        first, records = _peek(records)
        to_format = args.to or (first.source_format if first else args.from_format or "alpaca")
        with RowWriter(args.output) as writer:
            write_records(_same_format(filter_records(records, config, log), to_format, args.to), writer, to_format, log)
    finally:
        log.close()
    _finish(args, log, stats_path, sorted(log.info["filter_rules"].items(), key=lambda kv: -kv[1]))
    return 0


def _peek(records):
    import itertools

    it = iter(records)
    first = next(it, None)
    return first, (itertools.chain([first], it) if first is not None else iter(()))


def _same_format(records, to_format: str, explicit: str | None):
    from ..errors import InstructgenError

    for conv in records:
        if explicit is None and conv.source_format != to_format:
            raise InstructgenError(f"{conv.origin}: inputs are in several formats ({to_format}, {conv.source_format}); "
                                   "choose the output's with --to")
        yield conv


def run_stats(args) -> int:
    import orjson

    from ..convert import ReadOptions, read_records
    from ..curate.stats import dataset_stats, format_stats
    from ..io import write_text_atomic
    from ..runlog import RunLog

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
