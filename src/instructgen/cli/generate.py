"""`instructgen generate`: Self-Instruct / Alpaca generation against any OpenAI-compatible chat endpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import command_parser

EXAMPLES = """\
  export OPENAI_API_KEY=...            (read from the variable; never printed)
  instructgen generate --seed-tasks data/seeds/seed_tasks_en.jsonl --num-instructions 500 -o gen.jsonl
  instructgen generate --seed-tasks data/seeds/seed_tasks_zh.jsonl --lang zh --mode self-instruct \\
      --num-instructions 200 -o gen_zh.jsonl
  instructgen generate --seed-tasks seeds.jsonl -n 1000 -o gen.jsonl \\
      --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct --concurrency 32   (vLLM: no key needed)
  instructgen generate --seed-tasks seeds.jsonl -n 200 -o gen.jsonl --requests-per-minute 500 \\
      --tokens-per-minute 200000 --prices prices.json     prices.json: {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}

Interrupted (Ctrl-C, kill -9)? Run the same command again: answers already
received are replayed from the cache (OUT.cache/, or --cache-dir) and only
missing requests are sent; with the same --seed the result is the same.
Written beside the output: OUT.rejects.jsonl (dropped candidates with reason),
OUT.failures.jsonl (failed requests, unparsable answers, raw text kept),
OUT.stats.json (counts, tokens, cost).
"""


def register(sub) -> None:
    from ..formats import names

    p = command_parser(
        sub, "generate", help="generate instruction data from seed tasks (Self-Instruct / Alpaca)",
        description="Generate new instruction data from seed tasks with an OpenAI-compatible chat endpoint "
        "(OpenAI, vLLM, Ollama, llama.cpp server). --mode alpaca asks for 20 tasks per request shown 3 seed tasks; "
        "--mode self-instruct runs the original four steps (bootstrap, classify, instances, clean-up). "
        "A new instruction is kept only if its ROUGE-L against every kept instruction (seeds included) is at most "
        "--similarity-threshold (exact; CJK scored by character).",
        examples=EXAMPLES,
    )
    p.add_argument("--seed-tasks", required=True, nargs="+", metavar="FILE",
                   help="Self-Instruct seed file (instruction, instances, is_classification) or any format convert reads")
    p.add_argument("-n", "--num-instructions", type=int, required=True, metavar="N", help="instructions to keep")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (.jsonl, .json, .parquet, -)")
    p.add_argument("--mode", choices=("alpaca", "self-instruct"), default="alpaca")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="prompt language and filters (default en)")
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (not needed for a local --base-url)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    p.add_argument("--requests-per-minute", type=float, metavar="R", help="client-side request rate limit")
    p.add_argument("--tokens-per-minute", type=float, metavar="T", help="client-side token rate limit")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=3072)
    p.add_argument("--similarity-threshold", type=float, default=0.7, metavar="F")
    p.add_argument("--seed", type=int, default=0, help="fixes sampling of examples and per-request seeds")
    p.add_argument("--cache-dir", metavar="DIR", help="request cache (default OUT.cache beside the output)")
    p.add_argument("--format", default="alpaca", metavar="FORMAT", choices=names(writable_only=True),
                   help="output format (default alpaca): " + ", ".join(names(writable_only=True)))
    p.add_argument("--response-format", choices=("auto", "json", "text"), default="auto",
                   help="auto: ask for JSON, fall back to numbered text if the endpoint answers 400 (default)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before a retry")
    p.add_argument("--max-attempts", type=int, default=6, help="attempts per request, retries included")
    p.add_argument("--retry-backoff", type=float, default=1.0, metavar="S",
                   help="first retry delay in seconds, doubled per attempt with jitter (Retry-After is honoured)")
    p.add_argument("--max-requests", type=int, metavar="K", help="stop after K (bootstrap) requests")
    p.add_argument("--prices", metavar="FILE",
                   help='JSON price table in USD per 1M tokens: {"MODEL" or "*": {"prompt": x, "completion": y}}')
    p.add_argument("--rejects", metavar="PATH", help="dropped candidates (default OUT.rejects.jsonl)")
    p.add_argument("--stats", metavar="PATH", help="stats.json (default OUT.stats.json)")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InstructgenError
    from ..generate.run import GenerateConfig, generate, sibling
    from ..runlog import RunLog, write_stats

    prices = None
    if args.prices:
        try:
            prices = json.loads(Path(args.prices).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InstructgenError(f"--prices: cannot read {args.prices} as JSON: {e}") from None
    config = GenerateConfig(
        seed_tasks=args.seed_tasks, num_instructions=args.num_instructions, mode=args.mode, lang=args.lang,
        model=args.model, base_url=args.base_url, api_key_env=args.api_key_env, concurrency=args.concurrency,
        requests_per_minute=args.requests_per_minute, tokens_per_minute=args.tokens_per_minute,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
        similarity_threshold=args.similarity_threshold, seed=args.seed, cache_dir=args.cache_dir, format=args.format,
        response_format=args.response_format, timeout=args.timeout, max_attempts=args.max_attempts,
        retry_backoff=args.retry_backoff, max_requests=args.max_requests, prices=prices,
        progress={"auto": None, "always": True, "never": False}[args.progress],
    )
    log = RunLog("generate", args.rejects or sibling(args.output, "rejects.jsonl"))
    result = generate(config, args.output, log)
    for lg in result.logs:
        lg.print_summary()
    u = result.usage
    cost = f", cost ≈ ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
    print(f"requests: {result.requests} answered ({u['cache_hits']} from cache), {u['requests_sent']} sent, "
          f"{u['retries']} retries, {result.failures} failed; tokens: {u['prompt_tokens']} prompt + "
          f"{u['completion_tokens']} completion{cost}", file=sys.stderr)
    if result.failures_path:
        print(f"failed requests and unparsable answers are in {result.failures_path}", file=sys.stderr)
    if args.output != "-":
        print(f"wrote {result.records_written} records ({result.instructions_kept} instructions) to {args.output}",
              file=sys.stderr)
    write_stats(args.stats or sibling(args.output, "stats.json"), result.logs, generate=result.stats())
    if result.instructions_kept < config.num_instructions:
        print(f"warning: kept {result.instructions_kept} of {config.num_instructions} instructions before "
              "stopping (--max-requests reached); rerun with a larger --max-requests to continue from the cache",
              file=sys.stderr)
    return 0
