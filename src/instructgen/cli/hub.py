"""`instructgen push` and `instructgen download`: publish to and fetch from the Hugging Face Hub."""

from __future__ import annotations

import sys
from pathlib import Path

from . import command_parser

PUSH_EXAMPLES = """\
  instructgen push curated.jsonl --repo me/zh-instruct --formats sharegpt,moss,alpaca
  instructgen push curated.jsonl --repo me/zh-instruct --formats moss --dry-run hub_folder/
      writes the exact folder (Parquet shards + README.md) and uploads nothing; then
      python -c 'import datasets; print(datasets.load_dataset("hub_folder", "moss"))'
  instructgen push curated.jsonl --repo me/zh-instruct --stats run/stats.json --license cc-by-4.0 --create-pr
  HF_TOKEN_WRITE=... instructgen push data.jsonl --repo org/set --token-env HF_TOKEN_WRITE --private

One Hub config per output format (<config>/<split>-*.parquet), described in the dataset card
(README.md): licence, languages, sources and their revisions, generation model and parameters,
filters and dedup settings (from --stats), counts per stage, fields, two examples, and how to load
it. Pushing unchanged data makes no commit and says so; otherwise the commit SHA is printed on stdout.
The token comes from $HF_TOKEN (or --token-env NAME) or `hf auth login`, and is never printed.
HF_ENDPOINT points at another Hub (e.g. a mirror).
"""

DOWNLOAD_EXAMPLES = """\
  instructgen download alpaca --to sharegpt -o alpaca.sharegpt.jsonl
  instructgen download BelleGroup/train_0.5M_CN --revision 2b5cd2e --to alpaca -o belle.jsonl
  instructgen download me/zh-instruct --config moss --revision SHA --to openai -o train.jsonl
  instructgen download --list

A known NAME (see --list) brings its format, column mapping and data files; any other OWNER/REPO
is read through its card's configs or its data files, with the format detected. The resolved
commit SHA and licence go to OUT's stats (OUT.stats.json by default). Downloads are cached and
resumed by huggingface_hub and retried on transient errors.
"""


def register(sub) -> None:
    p = command_parser(
        sub, "push", help="publish records to the Hugging Face Hub as Parquet + a dataset card",
        description="Convert the input records to each --formats and publish them as one Hub config per "
        "format, with a dataset card.", examples=PUSH_EXAMPLES,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="record files in any format instructgen reads")
    p.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the dataset repo (created if missing)")
    p.add_argument("--formats", default="sharegpt", metavar="F1,F2",
                   help="output formats, one config each (default: sharegpt)")
    p.add_argument("--config-name", metavar="NAME",
                   help="config name instead of the format's (a prefix NAME-FORMAT with several formats)")
    p.add_argument("--split", default="train", help="split name (default: train)")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", help="input format (default: detect)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.add_argument("--token-env", default="HF_TOKEN", metavar="VAR", help="environment variable with the token")
    p.add_argument("--dry-run", metavar="DIR", help="write the Hub-shaped folder to DIR and upload nothing")
    p.add_argument("--stats", metavar="STATS_JSON", help="the pipeline's stats.json, described in the card")
    p.add_argument("--license", help="licence id for the card (default: from --stats, else 'unknown')")
    p.add_argument("--language", action="append", metavar="LANG",
                   help="language code for the card, repeatable (default: guessed from the script of the text)")
    p.add_argument("--pretty-name", help="title of the card (default: the repo name)")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="extra card tag, repeatable")
    p.add_argument("--message", help="commit message")
    p.add_argument("--rejects-dir", metavar="DIR",
                   help="where dropped records go (default: ./NAME.push-rejects/, created only if needed)")
    p.set_defaults(func=run_push)

    d = command_parser(
        sub, "download", help="fetch a published instruction set into any format",
        description="Download a well-known published set (by name) or any Hub dataset repo and convert it.",
        examples=DOWNLOAD_EXAMPLES,
    )
    d.add_argument("name", nargs="?", metavar="NAME|OWNER/REPO")
    d.add_argument("--list", action="store_true", help="list the known names and exit")
    d.add_argument("--revision", help="branch, tag, PR ref (refs/pr/N) or commit SHA (default: main)")
    d.add_argument("--to", dest="to_format", metavar="FORMAT", help="output format (default: the source's)")
    d.add_argument("--config", help="config of the repo (default: the registry's or the card's default)")
    d.add_argument("--split", help="split (default: the registry's, else train)")
    d.add_argument("-o", "--output", metavar="OUT", help="output file (.jsonl, .json, .parquet)")
    d.add_argument("--stats", metavar="PATH", help="stats file (default: OUT.stats.json)")
    d.add_argument("--rejects", metavar="PATH", help="unreadable records (default: OUT.rejects.jsonl)")
    d.add_argument("--token-env", default="HF_TOKEN", metavar="VAR",
                   help="environment variable with a token, for private or gated repos")
    d.set_defaults(func=run_download)


def _quiet_hub_bars() -> None:
    """huggingface_hub draws upload/download bars; only on a terminal."""
    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def run_push(args) -> int:
    import orjson

    from ..convert import ReadOptions
    from ..errors import InstructgenError
    from ..hub import push

    stats = None
    if args.stats:
        try:
            stats = orjson.loads(Path(args.stats).read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise InstructgenError(f"--stats {args.stats}: cannot read it as JSON ({e})") from None
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    _quiet_hub_bars()
    rejects_dir = args.rejects_dir or f"{args.repo.split('/')[-1]}.push-rejects"
    announce = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    result = push(
        args.inputs, args.repo, formats=formats, config_name=args.config_name, split=args.split,
        private=args.private, create_pr=args.create_pr, token_env=args.token_env, dry_run_dir=args.dry_run,
        stats=stats, license=args.license, languages=args.language, pretty_name=args.pretty_name, tags=args.tags,
        read_options=ReadOptions(from_format=args.from_format, announce=announce), rejects_dir=rejects_dir,
        commit_message=args.message, progress=sys.stderr.isatty(),
    )
    for log in result.folder.logs:
        log.print_summary()
    configs = ", ".join(f"{c.name} ({c.rows} rows)" for c in result.folder.configs)
    if args.dry_run:
        print(f"wrote {result.url}: {configs}; nothing uploaded (dry run)")
    elif not result.changed:
        print(f"unchanged: {args.repo} already has this data at {result.head}; no commit made")
    elif result.pr_url:
        print(f"opened {result.pr_url} with commit {result.commit_sha}: {configs}")
    else:
        print(f"committed {result.commit_sha} to {args.repo}: {configs}")
        print(f"load it with: datasets.load_dataset({args.repo!r}, {result.folder.configs[0].name!r}, "
              f"revision={result.commit_sha!r})")
    return 0


def run_download(args) -> int:
    from ..errors import InstructgenError
    from ..hub import download, published

    if args.list:
        for name, s in published().items():
            print(f"{name:<22} {s.repo:<45} {s.format:<9} {s.license or '?':<14} {s.notes}")
        return 0
    if not args.name or not args.output:
        raise InstructgenError("pass NAME|OWNER/REPO and -o OUT (or --list to see the known names)")
    _quiet_hub_bars()
    result = download(args.name, args.output, revision=args.revision, to_format=args.to_format,
                      config=args.config, split=args.split, token_env=args.token_env, stats_path=args.stats,
                      rejects_path=args.rejects)
    result.log.print_summary()
    print(f"{result.repo_id}@{result.revision} ({result.format}, licence {result.license or 'unknown'}) "
          f"-> {args.output} as {result.to_format}: {result.log.n_out} records")
    return 0
