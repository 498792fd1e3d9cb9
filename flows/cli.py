"""`instructgen run` and `instructgen serve`: the whole pipeline as Prefect flows.

These two commands come with the flows package and join the `instructgen` command line through the
`instructgen.commands` entry point, so the library never imports its orchestration layer. Prefect is
imported inside the command functions only: `instructgen convert` and the other single-stage commands
never pay for it.
"""

from __future__ import annotations

import os
import sys

from instructgen.cli import command_parser
from instructgen.errors import InstructgenError
from instructgen.progress import add_progress_flag, wanted as progress_wanted

# Prefect's temporary server creates and migrates its database on its first start: about 20 s on a
# 2-core machine, which is Prefect's own default wait. Ours is longer; a user's own setting wins.
EPHEMERAL_STARTUP_SECONDS = 300
PREFECT_DEFAULT_STARTUP_SECONDS = 20

RUN_EXAMPLES = """\
  instructgen run                                   the bundled example, end to end, into ./instructgen-output
  instructgen run pipeline.toml -o out/nightly      your config
  instructgen run pipeline.toml --runner processes  shards on a local process pool
  instructgen run pipeline.toml --runner dask       a local Dask cluster (dask=tcp://host:8786 joins one)
  instructgen run --print-example > pipeline.toml   start your own config from the example

With no CONFIG the bundled example (`instructgen run --print-example`) runs on the
sample files shipped with instructgen: generation and publishing to the Hub are
off in it, so it needs no API key and no network (the Hub step writes its
dry-run folder only). Prefect starts a temporary local server for the run when
no PREFECT_API_URL is set; nothing to install or start.

The output folder holds data/<format>.jsonl, rejects/<stage>.jsonl (every
dropped record with its reason), clusters.jsonl, stats.json (in = out +
rejected + filtered + duplicates per stage), hub/ (the dry-run folder, when
publishing is enabled) and report.md / report.html.
"""

SERVE_EXAMPLES = """\
  prefect server start &                                            a local server (SQLite), UI on :4200
  prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api
  instructgen serve pipeline.toml --cron "0 3 * * *"                nightly at 03:00, runs in this process
  instructgen serve pipeline.toml --cron "0 3 * * *" --timezone Europe/Paris -o /data/nightly
  prefect deployment run 'instructgen-pipeline/nightly'              trigger a run now

Runs never overlap: the deployment has a concurrency limit of 1. Stop with
Ctrl-C (the schedule is paused until you serve again). For a worker-based
setup use prefect.yaml (`prefect deploy --all`, then `prefect worker start`).
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "run": "run the whole pipeline (generate, curate, publish, report) as a Prefect flow",
    "serve": "serve the pipeline as a scheduled Prefect deployment",
}


def register(sub) -> None:
    p = command_parser(sub, "run", help=COMMANDS["run"],
                       description="Run the pipeline described by a TOML config as a Prefect flow: optional "
                       "generation, reading the sources, quality filtering, exact and near-duplicate removal, "
                       "writing each requested format, optional publishing, then stats.json and a report.",
                       examples=RUN_EXAMPLES)
    p.add_argument("config", nargs="?", metavar="CONFIG", help="pipeline config (TOML); default: the bundled example")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="output folder (default: the config's "
                   "pipeline.output_dir, else ./instructgen-output)")
    p.add_argument("--runner", metavar="RUNNER", help="threads | processes | dask[=ADDRESS] | ray[=ADDRESS] "
                   "(default: the config's pipeline.runner, else threads)")
    add_progress_flag(p, default=None, help="progress bars with ETA on stderr (default: the config's "
                      "pipeline.progress, else auto: when stderr is a terminal)")
    p.add_argument("--print-example", action="store_true", help="print the bundled example config and exit")
    p.set_defaults(func=run)

    s = command_parser(sub, "serve", help=COMMANDS["serve"],
                       description="Register the pipeline as a Prefect deployment with a cron schedule and run its "
                       "scheduled runs in this process until stopped. Needs a Prefect server or Prefect Cloud "
                       "(PREFECT_API_URL).", examples=SERVE_EXAMPLES)
    s.add_argument("config", nargs="?", metavar="CONFIG", help="pipeline config (TOML); default: the bundled example")
    s.add_argument("--cron", required=True, metavar="EXPR", help='cron schedule, e.g. "0 3 * * *" (03:00 daily)')
    s.add_argument("--timezone", metavar="TZ", help="time zone of the schedule (default: UTC)")
    s.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
    s.add_argument("-o", "--output-dir", metavar="DIR", help="output folder of each run")
    s.add_argument("--runner", metavar="RUNNER", help="threads | processes | dask[=ADDRESS] | ray[=ADDRESS]")
    s.set_defaults(func=serve)


def _prepare_prefect_env() -> None:
    # Prefect's anonymous telemetry heartbeat races the temporary server's SQLite start-up and prints
    # "database is locked" tracebacks; nothing is lost by leaving it off unless the user asked for it.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def start_prefect_server() -> None:
    """Start Prefect's temporary local server (when no API is configured) with a wait long enough for a
    first start, saying what it waits for; a user's own PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS wins."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    chosen = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    timeout = chosen if chosen != PREFECT_DEFAULT_STARTUP_SECONDS else EPHEMERAL_STARTUP_SECONDS
    print(f"starting Prefect's temporary local server (its first start creates a database under PREFECT_HOME; "
          f"waiting up to {timeout} s)", file=sys.stderr)
    server = SubprocessASGIServer()
    try:
        server.start(timeout=timeout)
    except RuntimeError as e:
        first = str(e).split(". ")[0]
        raise InstructgenError(
            f"{first}: Prefect's temporary server did not answer within {timeout} s. Wait longer with "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=600, or start a server yourself (`prefect server "
            "start`, then `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`)") from None
    # worker processes (--runner processes) talk to this server instead of each starting its own (which, on
    # a busy machine, does not answer within Prefect's 20 s and fails the run)
    os.environ["PREFECT_API_URL"] = server.api_url


def run(args) -> int:
    from instructgen.pipeline.config import example_config

    if args.print_example:
        sys.stdout.write(example_config().read_text(encoding="utf-8"))
        return 0
    # every setting and path is checked before Prefect starts: each problem is one line, said at once
    from instructgen.pipeline.config import checked_config, checked_output_folder

    cfg = checked_config(args.config)
    out = str(checked_output_folder(cfg, args.output_dir))
    _prepare_prefect_env()
    from instructgen.pipeline.layout import OutputFolder
    from instructgen_flows.pipeline import run_pipeline
    from instructgen_flows.runners import check_reachable, make_task_runner

    runner = args.runner or cfg.pipeline.runner
    make_task_runner(runner)  # a bad or missing runner
    check_reachable(runner)  # a cluster address nothing answers on
    # the one lock of the run, taken before Prefect starts: a second run on the same folder is refused here,
    # as are planted files; the outputs replace the previous run's when the flow has finished
    with OutputFolder(out) as opened:
        start_prefect_server()
        progress = None if args.progress is None else progress_wanted(args.progress)
        result = run_pipeline(args.config, out, args.runner, progress=progress, opened=opened)
    print("\nrecords through the stages (in = out + rejected + filtered + duplicates):", file=sys.stderr)
    for row in result["stages"]:
        drops = " + ".join(f"{k} {row[k]}" for k in ("rejected", "filtered", "duplicates") if row[k])
        print(f"  {row['stage']:<16} in {row['in']} = out {row['out']}" + (f" + {drops}" if drops else ""),
              file=sys.stderr)
    for fmt, path in result["outputs"].items():
        print(f"{fmt}: {path}", file=sys.stderr)
    if result["report_html"]:
        print(f"report: {result['report_html']} (and report.md)", file=sys.stderr)
    if not result["balanced"]:
        print("some stage does not balance: a bug, please report it with stats.json", file=sys.stderr)
        return 1
    return 0


def serve(args) -> int:
    from instructgen.pipeline.config import checked_config

    checked_config(args.config)
    _prepare_prefect_env()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise InstructgenError(
            "serve needs a Prefect server to hold the schedule: start one with `prefect server start` and "
            "run `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` (or log in to Prefect Cloud "
            "with `prefect cloud login`), then serve again"
        )
    from prefect.flows import EntrypointType

    from instructgen_flows.pipeline import pipeline_flow

    params = {
        "config_path": os.path.abspath(args.config) if args.config else None,
        "output_dir": os.path.abspath(args.output_dir) if args.output_dir else None,
        "runner": args.runner,
    }
    schedule_kwargs = {"cron": args.cron}
    if args.timezone:
        from prefect.schedules import Cron

        schedule_kwargs = {"schedules": [Cron(args.cron, timezone=args.timezone)]}
    pipeline_flow.serve(
        name=args.name, parameters=params, global_limit=1, limit=1, tags=["instructgen"],
        description="instructgen pipeline (generate -> curate -> publish -> report)",
        entrypoint_type=EntrypointType.MODULE_PATH, **schedule_kwargs,
    )
    return 0
