"""`instructgen generate`: Self-Instruct / Alpaca generation against any OpenAI-compatible chat endpoint.

The flags come from `generate.config.GenerateConfig` (the [generate] section of a pipeline config) through
`cli.options.add_options`; only the output paths, --prices and --progress are this command's own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..progress import add_progress_flag, wanted as progress_wanted
from . import command_parser

EXAMPLES = """\
  export OPENAI_API_KEY=...            (read from the variable; never printed)
  instructgen generate --seed-tasks data/seeds/seed_tasks_en.jsonl --num-instructions 500 -o gen.jsonl
  instructgen generate --seed-tasks data/seeds/seed_tasks_zh.jsonl --lang zh --mode self-instruct \\
      --num-instructions 200 -o gen_zh.jsonl
  instructgen generate --seed-tasks seeds.jsonl -n 1000 -o gen.jsonl \\
      --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct --concurrency 32   (vLLM: no key needed)
  instructgen generate --mode evol --seed-tasks seeds.jsonl --rounds 3 -n 1000 -o evol.jsonl
      (Evol-Instruct: eliminated evolutions in evol.rejects.jsonl with their rule; lineage in meta.evol)
  instructgen generate --mode pairs --seed-tasks prompts.jsonl --answers-per-prompt 2 \\
      --pair-temperatures 0.7 1.2 -o pairs.jsonl --format alpaca    (chosen/rejected; --format openai too)
  instructgen generate --mode chat --topics topics.txt --turns 4 -o chats.jsonl --format sharegpt
      (a user simulator and the assistant; topics.txt: one topic a line)
  instructgen generate ... --retry-failed     (send again only the failed rows of the ledger)
  instructgen generate --seed-tasks seeds.jsonl -n 200 -o gen.jsonl --requests-per-minute 500 \\
      --tokens-per-minute 200000 --prices prices.json     prices.json: {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}

Interrupted? The first Ctrl-C stops sending and waits (--interrupt-wait) for the
requests in flight so their answers are cached; a second one aborts. After that
or a kill -9, run the same command again: cached answers are replayed, only
missing requests are sent, and with the same --seed the result is the same.
A 429/5xx, a timeout, a dropped connection or a 200 answer that is not a chat
completion (an HTML page, garbage, no choices, null content) is retried with
backoff and jitter; Retry-After is honoured up to --max-retry-after.
Written beside the output: OUT.rejects.jsonl (the ledger: dropped candidates, eliminations, requests
that failed for good and replies that could not be read, each with its reason and raw reply),
OUT.failures.jsonl (failed requests with the raw answer, unparsable answers),
OUT.stats.json (counts, tokens, cost), OUT.cache/ (the request cache).
Exit status 1 when fewer instructions than asked were kept because requests
failed or the request budget ran out (the records kept are written; the
message names the cause); 0 when -n was reached or --max-requests stopped it.
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "generate": "generate instruction data from seed tasks (Self-Instruct, Alpaca, Evol-Instruct, preference pairs)",
}


def register(sub) -> None:
    from ..generate.config import ClientConfig, GenerateConfig
    from .options import add_options

    p = command_parser(
        sub, "generate", help=COMMANDS["generate"],
        description="Generate new instruction data from seed tasks with an OpenAI-compatible chat endpoint "
        "(OpenAI, vLLM, Ollama, llama.cpp server). --mode alpaca asks for 20 tasks per request shown 3 seed tasks; "
        "--mode self-instruct runs the original four steps (bootstrap, classify, instances, clean-up). "
        "A new instruction is kept only if its ROUGE-L against every kept instruction (seeds included) is at most "
        "--similarity-threshold (exact; CJK scored by character).",
        examples=EXAMPLES,
    )
    what = p.add_argument_group("what to generate (the [generate] section of a pipeline config)")
    add_options(what, GenerateConfig, exclude=tuple(ClientConfig.model_fields))
    _require(what, "seed_tasks")
    add_options(p.add_argument_group("endpoint, limits and retries (also in the [generate] section)"), ClientConfig)
    files = p.add_argument_group("files")
    files.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (.jsonl, .json, .parquet, -)")
    files.add_argument("--rejects", metavar="PATH", help="dropped candidates (default: OUT.rejects.jsonl)")
    files.add_argument("--failures", metavar="PATH", help="failed requests and unparsable answers, raw text kept "
                       "(default: OUT.failures.jsonl)")
    files.add_argument("--stats", metavar="PATH", help="stats.json (default: OUT.stats.json)")
    files.add_argument("--prices", metavar="FILE",
                       help='JSON price table in USD per 1M tokens: {"MODEL" or "*": {"prompt": x, "completion": y}}')
    add_progress_flag(files)
    files.add_argument("--retry-failed", action="store_true",
                       help="send again only the rows of the last run's ledger (its rejects file): requests that "
                       "failed for good and replies that could not be read (asked with a new seed); everything "
                       "else is replayed from the cache and nothing new is sent")
    p.set_defaults(func=run)


def _require(group, dest: str) -> None:
    for action in group._group_actions:
        if action.dest == dest:
            action.required = True
            action.help = action.help.split(" (default:")[0]
            action.option_strings.sort(key=lambda flag: flag != "--seed-tasks")  # --topics: chat mode's spelling


def run(args) -> int:
    from ..errors import InstructgenError
    from ..generate.config import GenerateConfig
    from ..generate.run import generate, plan_outputs
    from ..runlog import RunLog, write_stats
    from .options import config_from_args

    config = config_from_args(GenerateConfig, args)
    paths = plan_outputs(config, args.output, rejects=args.rejects, failures=args.failures, stats=args.stats,
                         default_stats=True, other_inputs={"--prices": args.prices} if args.prices else None)
    prices = _prices(args.prices) if args.prices else None
    progress = progress_wanted(args.progress)
    result = generate(config, paths.out, RunLog("generate", paths.rejects), failures_path=paths.failures,
                      prices=prices, progress=progress, retry_failed=args.retry_failed,
                      turn_filter=_junk_filter() if config.mode == "chat" else None)
    for lg in result.logs:
        lg.print_summary()
    u = result.usage
    cost = f", cost ≈ ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
    print(f"requests: {result.requests} answered ({u['cache_hits']} from cache), {u['requests_sent']} sent, "
          f"{u['retries']} retries, {result.failures} failed; tokens: {u['prompt_tokens']} prompt + "
          f"{u['completion_tokens']} completion{cost}", file=sys.stderr)
    if result.failures_path:
        print(f"failed requests and unparsable answers are in {result.failures_path}", file=sys.stderr)
    if u.get("not_sent"):
        print(f"--retry-failed: {u['not_sent']} requests outside the ledger were not sent; rerun without "
              "--retry-failed to continue from there", file=sys.stderr)
    if paths.out != "-":
        print(f"wrote {result.records_written} records ({result.instructions_kept} instructions) to {paths.out}",
              file=sys.stderr)
    write_stats(paths.stats, result.logs, generate=result.stats())
    shortfall = result.shortfall()
    if shortfall and result.failed:
        raise InstructgenError(f"{shortfall}; once that is fixed, rerun the same command (the answers received "
                               "so far are replayed from the cache)")
    if shortfall:
        print(f"warning: {shortfall}; rerun with a larger --max-requests to continue from the cache",
              file=sys.stderr)
    return 0


def _junk_filter():
    """The filter stage's default rules over each self-chat, turn by turn (junk drops or cuts, signals flag)."""
    from ..curate.filter import FilterConfig, filter_records

    config = FilterConfig()
    return lambda records, log: filter_records(records, config, log)


def _prices(path: str) -> dict:
    from ..errors import InstructgenError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InstructgenError(f"--prices: cannot read {path} as JSON: {e}") from None
