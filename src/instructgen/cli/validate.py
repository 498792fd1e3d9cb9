"""`instructgen validate`: check every record of a file against its format's JSON Schema and for meaning."""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

from ..errors import BadRecord, InstructgenError
from . import command_parser

EXAMPLES = """\
  instructgen validate data.jsonl                 detect the format, check every record
  instructgen validate data.json --format sharegpt
  instructgen validate data.jsonl --max-errors 0  report every invalid record (default: the first 50)
  instructgen validate data.json --for llamafactory              what LLaMA-Factory would skip, and why
  instructgen validate data.json --for llamafactory --dataset-info data/dataset_info.json --dataset NAME

Besides the schema and the format's reader, each record must mean a trainable conversation:
tool results follow the calls they answer, every call is answered before the conversation goes on
(openai: only a final call may stay open), user and assistant turns alternate where the format's
readers need it (sharegpt, openai: LLaMA-Factory skips such records), the conversation ends with
an assistant answer, and a preference record has both answers to a prompt that ends with the
user's turn (chosen/rejected) or a true/false label on its last answer (KTO).

--for llamafactory applies LLaMA-Factory 0.9.5's own rules instead, through the file's dataset_info.json
entry (the one `convert --dataset-info` writes for it, or NAME's in --dataset-info): role tags that
alternate per the entry's tags, the message count, the pair or KTO label the entry asks for, text in
every turn. Each record it would skip is reported as FILE:LINE: reason.
"""


# the commands this module adds, with their one-line help (`instructgen --help` lists them without loading more)
COMMANDS = {
    "validate": "check records against a format's JSON Schema and for meaning",
}


def register(sub) -> None:
    from ..formats import names

    p = command_parser(
        sub, "validate", help=COMMANDS["validate"],
        description="Check each record of FILE against schemas/<format>.schema.json, the format's reader, and "
        "what training needs (see below). Each invalid record is reported as FILE:LINE: JSON-PATH: message. "
        "Exit status 1 if any record is invalid.",
        examples=EXAMPLES,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=names(), help="the format to check against (default: detect)")
    p.add_argument("--max-errors", type=int, default=50, metavar="N", help="stop printing after N invalid records (0: all)")
    p.add_argument("--for", dest="reader", choices=["llamafactory"],
                   help="apply this reader's own rules: say which records it would skip and why")
    p.add_argument("--dataset-info", metavar="PATH",
                   help="with --for llamafactory: read the file through this dataset_info.json's entry "
                   "(default: the entry `convert --dataset-info` would write for it)")
    p.add_argument("--dataset", metavar="NAME", help="the entry of --dataset-info (default: the file's name "
                   "without its extension)")
    p.set_defaults(func=run)


class TagVocabulary:
    """The sharegpt role tags of a file, and how many records use each."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()

    def add(self, row: dict) -> str | None:
        from ..formats.sharegpt import mixed_tags, tags_used

        used = tags_used(row)
        self.records.update(used)
        return mixed_tags(used)

    def mixed(self) -> str | None:
        from ..formats.sharegpt import mixed_tags

        what = mixed_tags(set(self.records))
        if what is None:
            return None
        counts = ", ".join(f"{self.records[t]} records use {t!r}" for t in ("human", "user", "gpt", "assistant")
                           if self.records[t])
        return f"{what} ({counts})"


def run(args) -> int:
    if args.reader == "llamafactory":
        return run_llamafactory(args)
    if args.dataset_info or args.dataset:
        raise InstructgenError("--dataset-info and --dataset go with --for llamafactory")
    from .. import formats, schemas
    from ..formats.meaning import meaning_problems
    from ..io import read_rows

    rows = read_rows(args.file)
    name = args.format
    if name is None:
        head = list(itertools.islice(rows, formats.DETECT_SAMPLE))
        good = [r.data for r in head if r.error is None]
        if not good:
            raise InstructgenError(f"{args.file}: no record could be read" + (f" ({head[0].error})" if head else " (empty file)"))
        name = formats.detect_rows(good, args.file)
        print(f"{args.file}: detected format {name}", file=sys.stderr)
        rows = itertools.chain(head, rows)
    spec = formats.get(name)
    total = invalid = 0
    tags = TagVocabulary() if name == "sharegpt" else None
    for row in rows:
        total += 1
        problems = [("$", row.error)] if row.error else list(schemas.errors(name, row.data))
        if tags is not None and isinstance(row.data, dict) and (mixed := tags.add(row.data)):
            problems.append(("$.conversations", f"mixed role tags in one record: {mixed}"))
        if not problems:
            try:
                conv = spec.parse(row.data).check()
            except BadRecord as e:
                problems = [("$", e.reason)]
            else:
                problems = [("$", p) for p in meaning_problems(conv, spec.alternates, spec.answers_calls)]
        if problems:
            invalid += 1
            if args.max_errors == 0 or invalid <= args.max_errors:
                for path, message in problems:
                    print(f"{row.origin}: {path}: {message}")
    if total == 0:
        raise InstructgenError(f"{args.file}: the file is empty")
    if tags is not None and (across := tags.mixed()):
        invalid += 1
        print(f"{args.file}: mixed role tags across records: {across}; LLaMA-Factory and FastChat read one "
              f"vocabulary per file (`instructgen convert {args.file} --to sharegpt` writes one)")
    verdict = "all valid" if not invalid else f"{invalid} invalid"
    print(f"{args.file}: {total} records as {name}, {verdict}", file=sys.stderr)
    return 1 if invalid else 0


def run_llamafactory(args) -> int:
    """Which records LLaMA-Factory would skip, through the file's dataset_info.json entry, and why."""
    from ..formats.llamafactory_check import attributes, skip_reason
    from ..io import read_rows

    columns: set[str] = set()
    for row in read_rows(args.file):
        if row.error is None and isinstance(row.data, dict):
            columns.update(row.data)
    entry = _llamafactory_entry(args, columns)
    attr = attributes(entry)
    total = skipped = 0
    for row in read_rows(args.file):
        total += 1
        reason = row.error or skip_reason(row.data, attr, columns)
        if reason:
            skipped += 1
            if args.max_errors == 0 or skipped <= args.max_errors:
                print(f"{row.origin}: {reason}")
    if total == 0:
        raise InstructgenError(f"{args.file}: the file is empty")
    verdict = "reads every record" if not skipped else f"would skip {skipped} of {total} records"
    print(f"{args.file}: LLaMA-Factory {verdict} (entry: formatting {attr['formatting']}"
          f"{', ranking' if attr['ranking'] else ''}{', kto_tag ' + attr['kto_tag'] if attr['kto_tag'] else ''})",
          file=sys.stderr)
    return 1 if skipped else 0


def _llamafactory_entry(args, columns: set[str]) -> dict:
    """NAME's entry in --dataset-info, or the entry `convert --dataset-info` writes for this file."""
    from .. import formats
    from ..formats.llamafactory import dataset_name, entry
    from ..io import read_rows

    if args.dataset_info:
        name = args.dataset or dataset_name(args.file)
        try:
            info = json.loads(Path(args.dataset_info).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InstructgenError(f"--dataset-info {args.dataset_info}: cannot read it as JSON ({e})") from None
        if not isinstance(info, dict) or not isinstance(info.get(name), dict):
            raise InstructgenError(f"--dataset-info {args.dataset_info}: no entry {name!r}; name it with --dataset")
        return info[name]
    head = [r.data for r in itertools.islice(read_rows(args.file), formats.DETECT_SAMPLE) if r.error is None]
    if not head:
        raise InstructgenError(f"{args.file}: no record could be read")
    name = args.format or formats.detect_rows(head, args.file)
    tags = "user-assistant" if name == "sharegpt" and _speaks_user_assistant(args.file) else None
    return entry(name, dataset_name(args.file), columns, tags)


def _speaks_user_assistant(path: str) -> bool:
    from ..io import read_rows

    for row in read_rows(path):
        turns = row.data.get("conversations") if isinstance(row.data, dict) else None
        if isinstance(turns, list) and any(isinstance(t, dict) and t.get("from") == "assistant" for t in turns):
            return True
    return False
