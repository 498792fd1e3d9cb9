"""`instructgen push` and `instructgen download`: publish to and fetch from the Hugging Face Hub.

The flags of the settings come from hub.config's PublishConfig and DownloadOptions (cli.options).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InstructgenError
from ..progress import add_progress_flag, wanted as progress_wanted
from . import command_parser

PUSH_EXAMPLES = """\
  instructgen push curated.jsonl --repo me/zh-instruct --formats sharegpt,moss,alpaca
  instructgen push curated.jsonl --repo me/zh-instruct --formats moss --dry-run hub_folder/
      writes the exact folder (Parquet shards + README.md) and uploads nothing; then
      python -c 'import datasets; print(datasets.load_dataset("hub_folder", "moss"))'
  instructgen push curated.jsonl --repo me/zh-instruct --stats run/stats.json --license cc-by-4.0 --create-pr
  HF_TOKEN_WRITE=... instructgen push data.jsonl --repo org/set --token-env HF_TOKEN_WRITE --private

One Hub config per output format (<config>/<split>-*.parquet), described in the dataset card
(README.md): licence, languages, sources (a local file by its name relative to the stats file's
folder and its sha256, a Hub dataset by its id and revision), generation model and parameters,
filters and dedup settings (from --stats), counts per stage, fields, two examples, and how to load
it. Pushing unchanged data makes no commit and says so; otherwise the commit SHA is printed on
stdout. If the Hub's answer to the commit is lost, the repo is read again and the commit found
there is reported. The token comes from $HF_TOKEN (or --token-env NAME) or `hf auth login`, and
is never printed. HF_ENDPOINT points at another Hub (e.g. a mirror).
"""

DOWNLOAD_EXAMPLES = """\
  instructgen download alpaca --to sharegpt -o alpaca.sharegpt.jsonl
  instructgen download BelleGroup/train_0.5M_CN --revision 2b5cd2e --to alpaca -o belle.jsonl
  instructgen download me/zh-instruct --config moss --revision SHA --to openai -o train.jsonl
  instructgen download some/big-set -o big.jsonl --max-bytes 100GB --max-records 50000000
  instructgen download --list

A known NAME (see --list) brings its format, column mapping and data files; any other OWNER/REPO
is read through its card's configs or its data files, with the format detected. The resolved
commit SHA and licence go to OUT's stats (OUT.stats.json by default). Downloads are cached and
resumed by huggingface_hub and retried on transient errors. A repo is untrusted: archives
(.zip, .tar, .tar.gz, .gz) are unpacked into a private temporary folder, members with absolute or
'..' names, links and devices are refused, and data past --max-bytes (decompressed) or
--max-records is an error.
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "push": "publish records to the Hugging Face Hub as Parquet + a dataset card",
    "download": "fetch a published instruction set into any format",
}


def register(sub) -> None:
    from ..hub.config import DownloadOptions, PublishConfig
    from .options import add_options

    p = command_parser(
        sub, "push", help=COMMANDS["push"],
        description="Convert the input records to each --formats and publish them as one Hub config per "
        "format, with a dataset card.", examples=PUSH_EXAMPLES,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="record files in any format instructgen reads")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", help="input format (default: detect)")
    p.add_argument("--dry-run", metavar="DIR", help="write the Hub-shaped folder to DIR and upload nothing")
    p.add_argument("--stats", metavar="STATS_JSON", help="the pipeline's stats.json, described in the card")
    p.add_argument("--rejects-dir", metavar="DIR",
                   help="where dropped records go (default: ./NAME.push-rejects/, created only if needed)")
    group = p.add_argument_group("publish settings (the [publish] section of a pipeline config)")
    add_options(group, PublishConfig)
    # repeatable one-value flags, as before (a list flag taking several values would swallow the INPUTs)
    group.add_argument("--language", action="append", dest="languages", metavar="LANG",
                       help="language code for the card, repeatable (default: guessed from the script of the text)")
    group.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="extra card tag, repeatable")
    add_progress_flag(p)
    p.set_defaults(func=run_push)

    d = command_parser(
        sub, "download", help=COMMANDS["download"],
        description="Download a well-known published set (by name) or any Hub dataset repo and convert it.",
        examples=DOWNLOAD_EXAMPLES,
    )
    d.add_argument("name", nargs="?", metavar="NAME|OWNER/REPO")
    d.add_argument("--list", action="store_true", help="list the known names and exit")
    d.add_argument("-o", "--output", metavar="OUT", help="output file (.jsonl, .json, .parquet)")
    d.add_argument("--stats", metavar="PATH", help="stats file (default: OUT.stats.json)")
    d.add_argument("--rejects", metavar="PATH", help="unreadable records (default: OUT.rejects.jsonl)")
    add_options(d.add_argument_group("download settings"), DownloadOptions)
    add_progress_flag(d)
    d.set_defaults(func=run_download)


def _hub_bars(setting: str) -> bool:
    """huggingface_hub draws its upload/download bars by the same rule as ours (off unless wanted)."""
    if progress_wanted(setting):
        return True
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    return False


def run_push(args) -> int:
    import orjson

    from ..convert import ReadOptions
    from ..hub import CardInfo, PublishConfig, plan_paths, push
    from .options import config_from_args

    more = {k: getattr(args, k) for k in ("languages", "tags") if getattr(args, k, None)}
    config = config_from_args(PublishConfig, args, **more)
    rejects_dir = args.rejects_dir or f"{config.repo.split('/')[-1]}.push-rejects"
    plan_paths(args.inputs, config, args.dry_run, rejects_dir, {"--stats": args.stats} if args.stats else None)
    card = None
    if args.stats:
        try:
            stats = orjson.loads(Path(args.stats).read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise InstructgenError(f"--stats {args.stats}: cannot read it as JSON ({e})") from None
        if not isinstance(stats, dict):
            raise InstructgenError(f"--stats {args.stats}: expected a JSON object (a stats.json)")
        card = CardInfo.from_stats(stats, base_dir=Path(args.stats).resolve().parent)
    progress = _hub_bars(args.progress)
    announce = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    result = push(args.inputs, config, card, dry_run_dir=args.dry_run, rejects_dir=rejects_dir,
                  read_options=ReadOptions(from_format=args.from_format, announce=announce),
                  progress=progress)
    for log in result.folder.logs:
        log.print_summary()
    configs = ", ".join(f"{c.name} ({c.rows} rows)" for c in result.folder.configs)
    if args.dry_run:
        print(f"wrote {result.url}: {configs}; nothing uploaded (dry run)")
        return 0
    if not result.changed:
        print(f"unchanged: {config.repo} already has this data at {result.head}; no commit made")
        return 0
    if result.recovered:
        print(f"the Hub's answer to the commit was lost; read the repo again and found the commit "
              f"{result.commit_sha} holding this data", file=sys.stderr)
    if result.pr_url:
        print(f"opened {result.pr_url} with commit {result.commit_sha}: {configs}")
    else:
        print(f"committed {result.commit_sha} to {config.repo}: {configs}")
        print(f"load it with: datasets.load_dataset({config.repo!r}, {result.folder.configs[0].name!r}, "
              f"revision={result.commit_sha!r})")
    return 0


def run_download(args) -> int:
    from ..hub import DownloadOptions, download, published
    from .options import config_from_args

    if args.list:
        for name, s in published().items():
            print(f"{name:<22} {s.repo:<45} {s.format:<9} {s.license or '?':<14} {s.notes}")
        return 0
    if not args.name or not args.output:
        raise InstructgenError("pass NAME|OWNER/REPO and -o OUT (or --list to see the known names)")
    options = config_from_args(DownloadOptions, args)
    _hub_bars(args.progress)
    result = download(args.name, args.output, options, stats_path=args.stats, rejects_path=args.rejects)
    result.log.print_summary()
    print(f"{result.repo_id}@{result.revision} ({result.format}, licence {result.license or 'unknown'}) "
          f"-> {args.output} as {result.to_format}: {result.log.n_out} records")
    return 0
