"""`instructgen score` and `instructgen select`: quality scores by LLM judges (or offline signals), and selection.

Records are read and written as `filter` reads and writes them (convert.read_records / write_records);
rejects go beside -o as OUT.rejects.jsonl, stats to OUT.stats.json, and `in = out + rejected + filtered +
duplicates` is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..progress import add_progress_flag, tracked
from . import command_parser

SCORE_EXAMPLES = """\
  instructgen score data.jsonl -o scored.jsonl --judge alpagasus --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct
  instructgen score data.jsonl -o scored.jsonl --judges deita-complexity,deita-quality --concurrency 32
  instructgen score data.jsonl -o scored.jsonl --judges alpagasus,mt-bench   (their agreement goes to the stats)
  instructgen score data.jsonl -o scored.jsonl --judge-prompt my_judge.txt --judge-scale 1-7
  instructgen score data.jsonl -o scored.jsonl --judge signals               (no model: the filter's measures)
  instructgen score data.jsonl -o scored.jsonl --max-cost 2 --prices prices.json

Scores land in each record's meta.scores ({"alpagasus": 4.5, ...}); a score written on another scale
(8/10 for a 0-5 judge) is mapped onto the judge's and said in meta.score_notes. A reply with no score is
asked again once for the number alone; still none: the record goes to OUT.rejects.jsonl as kind
"unscored" with the replies. Every answer is cached (OUT.cache/): after Ctrl-C, kill -9, a failure or a
budget stop, run the same command again and only what is missing is paid for. The built-in prompts are
English and judge records in any language (Chinese included) unchanged.
"""

SELECT_EXAMPLES = """\
  instructgen select scored.jsonl -o best.jsonl --by alpagasus --min 4.5          (AlpaGasus' rule)
  instructgen select scored.jsonl -o best.jsonl --by deita-complexity*deita-quality --top-k 6000 --diverse
  instructgen select scored.jsonl -o best.jsonl --by mt-bench --budget-tokens 2000000 --per language
  instructgen select scored.jsonl -o best.jsonl --by output_length --drop-flags refusal,needs_media

Records are walked best first (ties: input order); each is taken unless it is below --min, over a quota,
over the token budget, or (--diverse) near a record already taken (estimated Jaccard of word 1-2-grams
>= --similarity, through an incremental MinHash/LSH index of the records taken: exact, never a sample).
Output keeps the input order. Every record not taken is in OUT.rejects.jsonl with why, so in = out + not selected.
"""

COMMANDS = {
    "score": "add LLM-judge scores (AlpaGasus, Deita, MT-Bench, your prompt) or offline signals to records",
    "select": "keep the best records by a score: top-k, threshold, token budget, diversity, quotas",
}


def register(sub) -> None:
    from ..formats import FORMAT_MODULES
    from ..generate.config import ClientConfig
    from ..quality.score import ScoreConfig
    from ..quality.select import SelectConfig
    from .options import add_options

    p = command_parser(sub, "score", help=COMMANDS["score"], examples=SCORE_EXAMPLES,
                       description="Score each record with LLM judges through any OpenAI-compatible endpoint "
                       "(the client of `generate`: concurrency, rate limits, retries, cache), or with the "
                       "filter's measures (--judge signals, no model). Scores go to meta.scores.")
    _io(p, FORMAT_MODULES)
    p.add_argument("--failures", metavar="PATH", help="requests that failed for good (default: OUT.failures.jsonl)")
    p.add_argument("--prices", metavar="FILE",
                   help='JSON price table in USD per 1M tokens: {"MODEL" or "*": {"prompt": x, "completion": y}}')
    add_options(p.add_argument_group("judges and budget (the [score] section of a pipeline config)"), ScoreConfig,
                exclude=tuple(ClientConfig.model_fields))
    add_options(p.add_argument_group("endpoint, limits and retries (also in the [score] section)"), ClientConfig)
    p.set_defaults(func=run_score)

    p = command_parser(sub, "select", help=COMMANDS["select"], examples=SELECT_EXAMPLES,
                       description="Keep the best records by a score in meta.scores (or a product of scores), "
                       "with a threshold, a top-k, a token budget, per-group quotas and Deita's diversity rule.")
    _io(p, FORMAT_MODULES, progress=False)
    add_options(p.add_argument_group("selection (the [select] section of a pipeline config)"), SelectConfig)
    p.set_defaults(func=run_select)


def _io(p, formats, progress: bool = True) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".json, .jsonl, .jsonl.gz, .parquet, or - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file (its extension picks the type) or -")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", choices=formats, help="input format (default: detect per file)")
    p.add_argument("--to", metavar="FORMAT", choices=formats, help="output format (default: the input's)")
    p.add_argument("--rejects", metavar="PATH", help="records not kept, with why (default: OUTPUT.rejects.jsonl)")
    p.add_argument("--stats", metavar="PATH", help="stats.json to write/merge into (default: OUTPUT.stats.json)")
    if progress:
        add_progress_flag(p)


def _plan(args, extra_inputs: dict[str, str] | None = None, failures: bool = False, cache_dir: str | None = None):
    """(rejects, stats, failures, cache_dir): every path written, checked against every input first."""
    from ..generate.cache import RequestCache
    from ..paths import CommandPaths, derived
    from .options import plan_rejects_and_stats

    plan = CommandPaths()
    plan.read_all(args.inputs)
    for flag, path in (extra_inputs or {}).items():
        plan.read(path, flag)
    rejects, stats = plan_rejects_and_stats(plan, args)
    failures_path = cache = None
    if failures:
        failures_path = plan.write(args.failures, "--failures") if args.failures else \
            plan.write(derived(args.output, "failures.jsonl", "score.failures.jsonl"), "the default failures file",
                       chosen=False)
        cache = str(cache_dir or derived(args.output, "cache", ".instructgen-cache"))
        plan.write(Path(cache) / RequestCache.FILE, "--cache-dir")
    plan.check()
    return rejects, stats, failures_path, cache


def _records(args, log):
    from ..convert import ReadOptions, read_records

    records = read_records(args.inputs, log, ReadOptions(from_format=args.from_format))
    return tracked(records, args.progress, args.command)


class _Out:
    """Writes records one at a time in one format (the first record's, or --to)."""

    def __init__(self, writer, log, explicit: str | None):
        self.writer, self.log, self.format, self.explicit = writer, log, explicit, explicit

    def __call__(self, conv) -> None:
        from ..convert import write_records
        from ..errors import InstructgenError

        if self.format is None:
            self.format = conv.source_format or "alpaca"
        elif self.explicit is None and conv.source_format != self.format:
            raise InstructgenError(f"{conv.origin}: inputs are in several formats ({self.format}, "
                                   f"{conv.source_format}); choose the output's with --to")
        write_records((conv,), self.writer, self.format, self.log)


def run_score(args) -> int:
    from ..errors import InstructgenError
    from ..generate.failures import FailureSink
    from ..io import RowWriter
    from ..quality.score import ScoreConfig, ScoreLog, request_secrets, score_records
    from ..runlog import write_stats
    from .options import config_from_args

    config = config_from_args(ScoreConfig, args)
    extra = {"--prices": args.prices} if args.prices else {}
    if config.judge_prompt:
        extra["--judge-prompt"] = str(config.judge_prompt)
    rejects, stats_path, failures_path, cache_dir = _plan(args, extra, failures=True, cache_dir=config.cache_dir)
    prices = _prices(args.prices) if args.prices else None
    config.judges()  # an unknown judge or a bad template: said before anything is read
    log = ScoreLog("score", rejects)
    try:
        with FailureSink(failures_path, request_secrets(config)) as failures, RowWriter(args.output, stable_keys=True) as writer:
            report = score_records(_records(args, log), config, log, _Out(writer, log, args.to), cache_dir=cache_dir,
                                   failures=failures, prices=prices)
        _notes(writer, log)
    finally:
        log.close()
    _summary(report)
    if args.output != "-":
        print(f"wrote {log.n_out} records to {args.output}", file=sys.stderr)
    log.print_summary()
    if stats_path:
        write_stats(stats_path, [log], score=report.to_dict())
    if failures.count:
        print(f"requests that failed for good are in {failures_path}", file=sys.stderr)
    if report.stop_reason:
        why = "Ctrl-C" if report.stop_reason == "interrupted" else report.stop_reason
        message = (f"stopped ({why}): the records not scored are in {rejects}; rerun the same command"
                   f"{' with a larger budget' if 'budget' in why else ''} to continue (answers so far come from "
                   f"the cache, {cache_dir})")
        if "budget" in why:
            print(f"warning: {message}", file=sys.stderr)
        else:
            raise InstructgenError(message)
    elif report.failures:
        raise InstructgenError(f"{report.failures} requests failed for good (see {failures_path}); once that is "
                               "fixed, rerun the same command (answers so far come from the cache)")
    return 0


def _summary(report) -> None:
    u = report.usage
    for name, tally in report.judges.items():
        t = tally.to_dict()
        print(f"{name}: {t['scored']} scored (mean {t['mean']}), {t['unscored']} unscored, "
              f"{t['retried_stricter']} asked again for the number alone, {t['normalised']} on another scale "
              f"mapped to {tally.low:g}-{tally.high:g}", file=sys.stderr)
    for pair, a in report.agreement.items():
        print(f"agreement {pair}: Spearman {a['spearman']}, within one point {a['within_one_point']} "
              f"({a['records']} records)", file=sys.stderr)
    if u:
        cost = f", cost ≈ ${report.cost_usd:.4f}" if report.cost_usd is not None else ""
        print(f"requests: {u['responses']} answered, {u['cache_hits']} from cache, {u['requests_sent']} sent, "
              f"{u['retries']} retries, {u['failures']} failed; tokens paid: {u['prompt_tokens']} prompt + "
              f"{u['completion_tokens']} completion{cost}", file=sys.stderr)


def _notes(writer, log) -> None:
    for note in writer.notes:
        print(note, file=sys.stderr)
    if writer.notes:
        log.info["parquet"] = list(writer.notes)


def _prices(path: str) -> dict:
    from ..errors import InstructgenError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InstructgenError(f"--prices: cannot read {path} as JSON: {e}") from None


def run_select(args) -> int:
    from ..io import RowWriter
    from ..paths import derived
    from ..quality.select import SelectConfig, check_config, select_files
    from ..runlog import RunLog, write_stats
    from .options import config_from_args

    config = config_from_args(SelectConfig, args)
    check_config(config)
    rejects, stats_path, _, _ = _plan(args)
    log = RunLog("select", rejects)
    try:
        with RowWriter(args.output, stable_keys=True) as writer:
            outcome = select_files(args.inputs, config, log, _Out(writer, log, args.to),
                                   from_format=args.from_format, ranked_rows=derived(args.output, "ranked", "select.ranked"))
        _notes(writer, log)
    finally:
        log.close()
    if args.output != "-":
        print(f"wrote {log.n_out} selected records to {args.output}", file=sys.stderr)
    log.print_summary()
    if stats_path:
        write_stats(stats_path, [log], select=outcome)
    return 0
