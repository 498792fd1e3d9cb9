"""`instructgen validate`: check every record of a file against its format's JSON Schema and for meaning."""

from __future__ import annotations

import itertools
import sys

from . import command_parser

EXAMPLES = """\
  instructgen validate data.jsonl                 detect the format, check every record
  instructgen validate data.json --format sharegpt
  instructgen validate data.jsonl --max-errors 0  report every invalid record (default: the first 50)

Besides the schema and the format's reader, each record must mean a trainable conversation:
tool results follow the calls they answer, every call is answered before the conversation goes on
(openai: only a final call may stay open), user and assistant turns alternate where the format's
readers need it (sharegpt, openai: LLaMA-Factory skips such records), the conversation ends with
an assistant answer, and a preference record has both answers to a prompt that ends with the
user's turn (chosen/rejected) or a true/false label on its last answer (KTO).
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
    p.set_defaults(func=run)


class TagVocabulary:
    """The sharegpt role tags of a file, and how many records use each."""

    def __init__(self) -> None:
        from collections import Counter

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
    from .. import formats, schemas
    from ..errors import BadRecord, InstructgenError
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
