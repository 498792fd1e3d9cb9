"""What every format module shares: dump options, the metadata channel, and lossy flattening.

A format module defines:

    NAME: str                 registry key, also the `--to/--from` choice
    DESCRIPTION: str          one line for `instructgen formats`
    EXAMPLE: dict             one row, shown by `instructgen formats` and used in tests
    REFINES: str | None       name of a broader format whose rows this one reads more precisely
                              (e.g. BELLE's Human:/Assistant: text inside alpaca fields)
    WRITABLE: bool            False for read-only forms
    NATIVE_META: frozenset    conv.meta keys the format writes as its own fields
    PREFERENCE: bool          True when the format has LLaMA-Factory's preference layouts (chosen/rejected, label)
    TURNS: tuple              the --turns modes the format takes (single-turn formats: first, last, explode)
    ALTERNATES: bool          True when its readers need user and assistant turns to alternate (validate checks it)
    ANSWERS_CALLS: bool       True when its readers refuse a tool call left unanswered before the conversation
                              goes on (OpenAI's Chat API; validate checks it)
    WHOLE: bool               True when it writes the conversation as it is (tool turns included), so `convert`
                              refuses a record `validate` would call meaningless there (formats that flatten
                              to user/assistant pairs repair such records by construction)
    def detect(row: dict) -> bool
    def parse(row: dict) -> Conversation          raises BadRecord
    def dump(conv, opts, lost) -> list[dict]      raises CannotRepresent; calls lost("...") per loss
    def notes(conv, opts) -> Iterable[str]        optional: what the format adds that is worth counting
    def read_plain(row) -> Plain | None                          optional, the direct path (see convert.py):
    def write_plain(plain, origin, opts, notes, jsonl)           a plain record without a Conversation, exactly
                                                                 as parse/dump would (None: take the canonical path)

Record-level data the target format has no field for (`conv.meta`: the alpaca
instruction/input split, MOSS plugin layout, an id, the rejected answer of a
preference pair, ...) and the top-level fields of a source row its format does
not define (`conv.extra`: `images`, ids, anything) travel in one top-level
object, `"meta"`, so alpaca -> sharegpt -> alpaca and moss -> openai -> moss
lose nothing and no target gets columns it does not define. Only a row written
back in its own format gets its extra fields back at the top level, with one
exception: media columns (`images`, `videos`, `audios`) stay top-level in the
formats LLaMA-Factory reads them from (alpaca, history, sharegpt, openai), where
a trainer looks for them.
`--no-meta` (keep_meta=False, extras=False) leaves all of it out, counted per field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from ..errors import BadRecord, CannotRepresent
from ..record import Conversation, Message

META_KEY = "meta"
MEDIA_KEYS = ("images", "videos", "audios")  # LLaMA-Factory's media columns, matched by <image>, <video>, <audio>
MEDIA_FORMATS = frozenset({"alpaca", "history", "sharegpt", "openai"})
Lost = Callable[[str], None]
# a plain conversation on the direct path: (system prompt or None, [(user, assistant), ...], meta)
Plain = tuple[str | None, list[tuple[str, str]], dict[str, Any]]
TURN_MODES = ("first", "last", "explode")
# meta keys that carry preference data through formats without preference fields
REJECTED_KEY, LABEL_KEY = "rejected", "label"


@dataclass(slots=True)
class DumpOptions:
    meta_instruction: str | None = None  # MOSS: the meta instruction for records from other formats
    meta_instruction_source: str | None = None  # where it came from (a file name), for the summary
    explode_turns: bool = False  # chatglm: one row per assistant turn, with a growing history (= turns "explode")
    turns: str | None = None  # first | last | explode; None: first (a preference record: the turn it judges)
    columns: dict[str, str] | None = None  # chatglm: canonical field -> column name (prompt=content, ...)
    keep_meta: bool = True  # write the "meta" channel
    extras: bool = True  # write back top-level fields the source format did not define (same format only)
    layout: str | None = None  # openai: None (LLaMA-Factory's), "strict" (only OpenAI's keys), "preference" (its DPO)
    tags: str | None = None  # sharegpt: role tags, "human-gpt" (None: the standard) or "user-assistant"
    # --turns explode: refuse an output whose text grows past this many times its records' (0: no cap)
    max_explode_growth: float = 10.0


# -- reading helpers -------------------------------------------------------------------------------

def require_str(row: dict, key: str, *, optional: bool = False, default: str = "") -> str:
    """row[key] as a string, or BadRecord naming the field and what was found."""
    if key not in row or row[key] is None:
        if optional:
            return default
        raise BadRecord(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise BadRecord(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def require_list(row: dict, key: str, *, optional: bool = False) -> list:
    if key not in row or row[key] is None:
        if optional:
            return []
        raise BadRecord(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, list):
        raise BadRecord(f"field {key!r} must be a list, got {type(value).__name__}")
    return value


def parse_pairs(value: list, where: str) -> list[tuple[str, str]]:
    """A `history` value: [[question, answer], ...]."""
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise BadRecord(f"{where}[{i}] must be a [question, answer] pair of strings")
        pairs.append((pair[0], pair[1]))
    return pairs


def preference_fields(row: dict, known: frozenset[str], text_answers: bool = False, answer=None
                      ) -> tuple[tuple[Message, Message] | None, bool | None, frozenset[str]]:
    """(chosen and rejected answers, KTO label, the row's known fields with them) of a row in one of
    LLaMA-Factory's preference layouts. `text_answers`: the answers are strings (alpaca); else
    `answer(value, where)` reads one answer object. A `label` that is not a boolean but reads as a
    verdict (a number, null, a list, "yes", "false", ...) is refused: written as plain supervised data
    it would make an undesirable answer a training target. A word such as "spam" is a category,
    not a KTO tag: it stays an ordinary extra field."""
    if "chosen" in row or "rejected" in row:
        for key in ("chosen", "rejected"):
            if key not in row:
                other = "rejected" if key == "chosen" else "chosen"
                raise BadRecord(f"field {other!r} without {key!r}: a preference pair needs both answers")
        if text_answers:
            pair = (Message("assistant", require_str(row, "chosen")),
                    Message("assistant", require_str(row, "rejected")))
        else:
            pair = (answer(row["chosen"], "chosen"), answer(row["rejected"], "rejected"))
        return pair, None, known | {"chosen", "rejected"}
    if isinstance(row.get("label"), bool):
        return None, row["label"], known | {"label"}
    if "label" in row and _reads_as_verdict(row["label"]):
        raise BadRecord(f"field 'label' is LLaMA-Factory's KTO tag and must be true or false, got {row['label']!r}; "
                        "make the column booleans (or rename it if it is not a verdict on the answer)")
    return None, None, known


VERDICT_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f", "1", "0", "none", "null", "",
                           "good", "bad", "desirable", "undesirable"})


def _reads_as_verdict(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in VERDICT_WORDS
    return not isinstance(value, dict)  # numbers, null, lists: a verdict in the wrong type


def split_known(row: dict, known: frozenset[str] | set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta carried in the row's "meta" channel, extra top-level fields) of a row."""
    meta = row.get(META_KEY)
    carried = dict(meta) if isinstance(meta, dict) and META_KEY not in known else {}
    # a null meta is no meta: the writer gives it to rows without one so every row has the same keys
    extra = {k: v for k, v in row.items()
             if k not in known and not (k == META_KEY and (carried or meta is None))}
    return carried, extra


# -- writing helpers -------------------------------------------------------------------------------

def finish_row(row: dict[str, Any], conv: Conversation, opts: DumpOptions, native: frozenset[str], fmt: str) -> dict:
    """Add the source's extra fields (back at the top level in its own format `fmt`, else in the meta
    channel) and the meta channel to a row the format built."""
    own = conv.source_format == fmt
    if own and opts.extras:
        for k, v in conv.extra.items():
            row.setdefault(k, v)
    media = _media(conv, fmt)
    for k in media:
        row.setdefault(k, conv.extra[k])
    if opts.keep_meta:
        carried = {k: v for k, v in conv.meta.items() if k not in native}
        if conv.extra and not own:
            for k, v in conv.extra.items():
                if k not in media:
                    carried.setdefault(k, v)
        if carried and META_KEY not in row:
            row[META_KEY] = carried
    return row


def _media(conv: Conversation, fmt: str) -> list[str]:
    """The media columns of the record that stay top-level in format `fmt`."""
    if fmt not in MEDIA_FORMATS or not conv.extra:
        return []
    return [k for k in MEDIA_KEYS if k in conv.extra]


def extra_fields_fate(conv: Conversation, fmt: str, opts: DumpOptions) -> tuple[str, list[str]]:
    """What finish_row does with the source's extra fields: ("top", ...), ("meta", ...) or ("dropped", ...)."""
    if not conv.extra:
        return "top", []
    if conv.source_format == fmt:
        return ("top" if opts.extras else "dropped"), list(conv.extra)
    media = _media(conv, fmt)
    return ("meta" if opts.keep_meta else "dropped"), [k for k in conv.extra if k not in media]


# -- preference data in formats without preference fields -----------------------------------------

def as_sft(conv: Conversation, opts: DumpOptions, lost: Lost) -> Conversation:
    """The record as supervised data, for a format without preference fields: a pair becomes its
    chosen answer (the rejected one travels in meta["rejected"]), a KTO label goes to meta["label"]."""
    if conv.chosen is not None:
        where = "in meta" if opts.keep_meta else "dropped"
        lost(f"preference pair written as its chosen answer (rejected answer {where})")
        if conv.rejected.tool_calls:
            lost("tool calls of the rejected answer dropped")
        return replace(conv, messages=[*conv.messages, conv.chosen], chosen=None, rejected=None,
                       meta={**conv.meta, REJECTED_KEY: conv.rejected.content})
    if conv.label is not None:
        where = "in meta" if opts.keep_meta else "dropped"
        lost(f"KTO label {where} ({'desirable' if conv.label else 'undesirable'} answer written as a training target)")
        return replace(conv, label=None, meta={**conv.meta, LABEL_KEY: conv.label})
    return conv


def restore_preference(conv: Conversation) -> Conversation:
    """Give a record read from a format without preference fields back the preference that `as_sft`
    put in its meta channel (when the conversation still ends with the answer it belongs to)."""
    if conv.preference or not conv.meta or not conv.messages or conv.messages[-1].role != "assistant":
        return conv
    rejected, label = conv.meta.get(REJECTED_KEY), conv.meta.get(LABEL_KEY)
    if isinstance(rejected, str) and len(conv.messages) > 1 and conv.messages[-2].role in ("user", "tool"):
        conv.chosen = conv.messages.pop()
        conv.rejected = Message("assistant", rejected)
        del conv.meta[REJECTED_KEY]
    elif isinstance(label, bool):
        conv.label = label
        del conv.meta[LABEL_KEY]
    return conv


# -- which turns a single-turn row takes ---------------------------------------------------------------

@dataclass(slots=True)
class Turn:
    """One row's worth of a conversation for formats with one prompt per row."""

    user: str
    answer: str | None  # None for a preference pair (the row takes chosen/rejected)
    history: list[tuple[str, str]]  # the turns before it


def turn_rows(conv: Conversation, opts: DumpOptions, lost: Lost, keeps_history: bool = False) -> list[Turn]:
    """The rows of a conversation in a format with one prompt per row, per --turns.

    A preference record takes the turn its answers judge (the last one) or is refused with
    `--turns first`: chosen/rejected never go with another prompt. `keeps_history`: the format
    writes `Turn.history` (earlier turns are then not lost)."""
    mode = opts.turns or ("explode" if opts.explode_turns else None)
    if conv.preference:
        return [_judged_turn(conv, mode, lost, keeps_history)]
    pairs = flatten_to_pairs(conv, lost)
    if mode == "explode":
        if len(pairs) > 1 and not keeps_history:
            lost("turns written as separate rows (earlier turns dropped from each)")
        return [Turn(q, a, pairs[:k]) for k, (q, a) in enumerate(pairs)]
    if mode == "last":
        if len(pairs) > 1 and not keeps_history:
            lost("history dropped (kept the last turn)")
        return [Turn(*pairs[-1], pairs[:-1])]
    if len(pairs) > 1 and not keeps_history:
        lost("history dropped (kept the first turn)")
        return [Turn(*pairs[0], [])]
    return [Turn(*pairs[-1], pairs[:-1])]


def _judged_turn(conv: Conversation, mode: str | None, lost: Lost, keeps_history: bool) -> Turn:
    if conv.pairwise:
        if conv.messages[-1].role != "user":
            raise CannotRepresent("the preference answers a tool result, and this format has no tool turns")
        prompt = conv.messages[-1].content
        before = replace(conv, messages=conv.messages[:-1], chosen=None, rejected=None)
        earlier = flatten_to_pairs(before, lost) if any(m.role != "system" for m in before.messages) else []
        answer = None
    else:
        pairs = flatten_to_pairs(replace(conv, label=None), lost)
        (prompt, answer), earlier = pairs[-1], pairs[:-1]
    if earlier and mode == "first":
        raise CannotRepresent(f"the preference judges turn {len(earlier) + 1}, not the first; "
                              "--turns first would pair it with another prompt (use --turns last)")
    if earlier and not keeps_history:
        lost("history dropped (kept the turn the preference judges)")
    return Turn(prompt, answer, earlier)


def flatten_to_pairs(conv: Conversation, lost: Lost) -> list[tuple[str, str]]:
    """(user, assistant) pairs of any conversation, applying and counting the losses.

    Tool calls and tool results are dropped, and so is the text beside a call (a thought such as
    MOSS's inner thoughts) when the assistant answers after the results; an opening assistant turn
    and a closing user turn (no answer) are dropped; consecutive turns of one role are joined with
    a blank line. The system prompt is left to the caller.
    """
    if not conv.tools:  # the common case, a plain alternation, costs one pass and no loss
        turns = conv.turns
        if turns and not len(turns) % 2 and all(
            u.role == "user" and a.role == "assistant" and not a.tool_calls for u, a in zip(turns[::2], turns[1::2])
        ):
            return [(u.content, a.content) for u, a in zip(turns[::2], turns[1::2])]
    turns: list[Message] = []
    tools_dropped = bool(conv.tools)
    beside_call = False  # turns[-1] is the text beside a call, standing in until the assistant answers
    for m in conv.turns:
        if m.role == "tool" or (m.role == "assistant" and m.tool_calls and not m.content):
            tools_dropped = True
            continue
        if m.tool_calls:
            tools_dropped = True
        if beside_call and m.role == "assistant":
            turns[-1] = m
            lost("assistant text beside tool calls dropped")
            beside_call = bool(m.tool_calls)
            continue
        if turns and turns[-1].role == m.role:
            turns[-1] = Message(m.role, turns[-1].content + "\n\n" + m.content)
            lost("consecutive same-role turns joined")
            continue
        turns.append(m)
        beside_call = bool(m.tool_calls)
    if tools_dropped:
        lost("tools dropped")
    if turns and turns[0].role == "assistant":
        turns.pop(0)
        lost("opening assistant turn dropped")
    if turns and turns[-1].role == "user":
        turns.pop()
        lost("trailing user turn dropped")
    if not turns:
        raise CannotRepresent("no user turn answered by the assistant")
    return [(turns[i].content, turns[i + 1].content) for i in range(0, len(turns), 2)]


def drop_system(conv: Conversation, lost: Lost) -> None:
    if conv.system:
        lost("system prompt dropped")


def split_instruction(conv: Conversation, user: str) -> tuple[str, str]:
    """(instruction, input) of the first user message, using the split alpaca/dolly recorded if it still fits."""
    split = conv.meta.get("split")
    if isinstance(split, dict):
        instruction, inp = split.get("instruction"), split.get("input")
        if isinstance(instruction, str) and isinstance(inp, str) and join_instruction(instruction, inp) == user:
            return instruction, inp
    return user, ""


def join_instruction(instruction: str, inp: str) -> str:
    """The user message of an alpaca-style row (LLaMA-Factory joins with a newline)."""
    return f"{instruction}\n{inp}" if inp else instruction


def single_turn(instruction: str, inp: str, output: str, *, meta: dict | None = None, **kwargs: Any) -> Conversation:
    """The conversation of an alpaca-style row, remembering the instruction/input split."""
    meta = dict(meta or {})
    if inp:
        meta["split"] = {"instruction": instruction, "input": inp}
    return Conversation(
        [Message("user", join_instruction(instruction, inp)), Message("assistant", output)], meta=meta, **kwargs
    )


@dataclass(slots=True)
class FormatSpec:
    """A registered format: the module's functions and constants, gathered."""

    name: str
    description: str
    example: dict
    detect: Callable[[dict], bool]
    parse: Callable[[dict], Conversation]
    dump: Callable[[Conversation, DumpOptions, Lost], list[dict]] | None
    refines: str | None = None
    native_meta: frozenset[str] = field(default_factory=frozenset)
    preference: bool = False  # writes chosen/rejected and label in LLaMA-Factory's layouts
    turns: tuple[str, ...] = ()  # the --turns modes it takes
    alternates: bool = False  # its readers (LLaMA-Factory) need user/assistant turns to alternate
    whole: bool = False  # writes the conversation as it is: convert checks meaning before writing
    answers_calls: bool = False  # its readers refuse a call left unanswered (OpenAI's Chat API)
    keep_absent: frozenset[str] = field(default_factory=frozenset)  # keys its readers test by presence: never null
    notes: Callable[[Conversation, DumpOptions], Iterable[str]] | None = None
    read_plain: Callable[[dict], Any] | None = None
    write_plain: Callable[..., dict | None] | None = None

    @property
    def writable(self) -> bool:
        return self.dump is not None
