"""A growing generation: each pipeline run with `[generate] grow = true` adds one round to a pool of records.

    OUT/.cache/grow-LINEAGE/round-0001/   seeds.jsonl (evol), generated.jsonl, rejects*.jsonl, failures.jsonl,
                                          round.json (written last: the round is finished, with digests)
    OUT/.cache/grow-LINEAGE/pool/         what the run hands the pipeline: generated.jsonl (every round's records,
                                          `meta.generation_round` set), each round's rejects and failures, rounds.json

Round r's seeds come from the rounds before it: alpaca and self-instruct take the seed files plus every earlier
round's records (self-instruct treats those as its machine-generated pool, and the ROUGE-L filter compares each
new instruction with all of them); evol takes each root's latest kept evolution (`meta.evol`) and evolves it
again. LINEAGE is the generation's settings and seed files (the caps aside): change them and a new pool starts.

Which round a run makes: the previous successful run's `generated/rounds.json` says which rounds it published;
the run makes the next one (a run that failed after generating publishes nothing, so its rerun takes the round
it had made from the cache instead of making another). Nothing read back is trusted: rounds.json, the round
folders and their files are refused when they are links; a round counts only when its round.json has the
expected shape, every file it wrote has the sha256 it recorded (no other file is read), its counts balance, its
seeds are the ones this run would give it and every record parses; a run trusts the previous
rounds.json only as far as the finished rounds in .cache reach, so a planted one cannot make a run generate
more than one round. A round that fails these checks is made again (its answers come from the request cache).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

from ..errors import InstructgenError
from ..runlog import DROP_KINDS, RunLog

ROUNDS_FILE = "rounds.json"
ROUND_FILE = "round.json"
RECORDS = "generated.jsonl"
SEEDS = "seeds.jsonl"  # evol: the round's seeds (each root's latest evolution)
FAILURES = "failures.jsonl"
POOL = "pool"
MAX_STATE_BYTES = 4 << 20
_HEX24 = re.compile(r"[0-9a-f]{24}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[\w-]+(\.[\w-]+)*\.jsonl")
STAGES = ("generate", "generate-instructions")


class NotARound(Exception):
    """A round folder that is not one a run finished (missing, partial, planted or tampered with): why."""


@dataclass
class Round:
    number: int
    folder: Path
    records: int
    logs: list[dict[str, Any]]  # {stage, rejects (a file name in folder), in, out, dropped, info}
    summary: dict[str, Any]  # the round's generation stats (requests, cache hits, usage, stop reason)
    complete: bool  # False: a spending cap stopped it; the next run goes on with it
    files: dict[str, str]  # every file the round wrote -> its sha256 (nothing else in its folder is read)


# -- reading what earlier runs left (untrusted) ---------------------------------------------------------------

def refuse_link(path: Path, what: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise InstructgenError(f"{path} is a symbolic link; instructgen keeps {what} there itself and will not "
                               "read or write through a link: remove it (and look at what else was put in that "
                               "folder), or choose another output folder with -o")


def own_folder(path: Path, what: str) -> Path:
    """PATH as a folder of ours: created if absent; a link or a file there is refused."""
    refuse_link(path, what)
    path.mkdir(parents=True, exist_ok=True)
    if not path.is_dir():
        raise InstructgenError(f"{path} is not a folder; instructgen keeps {what} there: remove it, or choose "
                               "another output folder with -o")
    return path


def read_plain(path: Path, limit: int | None = None) -> bytes:
    """A plain file's bytes, never through a link (NotARound otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotARound(f"{path.name} is missing") from None
    except OSError as e:
        raise NotARound(f"{path.name} is a link" if e.errno == errno.ELOOP else f"{path.name}: {e}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARound(f"{path.name} is not a plain file")
        data = fh.read(limit + 1 if limit else -1)
    if limit and len(data) > limit:
        raise NotARound(f"{path.name} is larger than any instructgen writes")
    return data


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise NotARound(f"{path.name} is a link" if e.errno == errno.ELOOP else f"{path.name}: {e}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARound(f"{path.name} is not a plain file")
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_rounds(output: Path, lineage: str) -> int:
    """How many finished rounds of LINEAGE the previous successful run published (its generated/rounds.json)."""
    generated = output / "generated"
    refuse_link(generated, "the generated records")
    path = generated / ROUNDS_FILE
    if not path.exists() and not path.is_symlink():
        return 0
    try:
        doc = orjson.loads(read_plain(path, MAX_STATE_BYTES))
    except (NotARound, orjson.JSONDecodeError) as e:
        raise InstructgenError(f"{path}: not a rounds file instructgen wrote ({e}); remove it (the rounds kept in "
                               f"{output / '.cache'} are reused), or choose another output folder with -o") from None
    rounds = doc.get("rounds") if isinstance(doc, dict) else None
    if not isinstance(rounds, list) or not isinstance(doc.get("lineage"), str) or not all(
            isinstance(r, dict) and r.get("round") == n and isinstance(r.get("complete"), bool)
            for n, r in enumerate(rounds, 1)):
        raise InstructgenError(f"{path}: not a rounds file instructgen wrote (it needs a lineage and rounds "
                               f"numbered 1, 2, ...); remove it (the rounds kept in {output / '.cache'} are reused), "
                               "or choose another output folder with -o")
    if doc["lineage"] != lineage:
        return 0  # other settings made that pool: this one starts at round 1
    finished = 0
    for r in rounds:
        if not r["complete"]:
            break
        finished += 1
    return finished


def load_round(folder: Path, number: int, lineage: str, inputs: str) -> Round:
    """Round NUMBER as a finished run left it, every part checked (NotARound says what is wrong)."""
    if folder.is_symlink() or not folder.is_dir():
        raise NotARound("the folder is missing" if not folder.is_symlink() else "the folder is a link")
    try:
        doc = orjson.loads(read_plain(folder / ROUND_FILE, MAX_STATE_BYTES))
    except orjson.JSONDecodeError:
        raise NotARound(f"{ROUND_FILE} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("round") != number or doc.get("lineage") != lineage:
        raise NotARound(f"{ROUND_FILE} is not round {number} of this generation")
    if doc.get("inputs") != inputs:
        raise NotARound("it was made from other seeds (an earlier round changed since)")
    records, files, logs = doc.get("records"), doc.get("files"), doc.get("logs")
    if not (isinstance(records, int) and records >= 0 and isinstance(files, dict) and RECORDS in files
            and all(isinstance(k, str) and _FILE_NAME.fullmatch(k) and isinstance(v, str) and _HEX64.fullmatch(v)
                    for k, v in files.items())
            and isinstance(logs, list) and logs and isinstance(doc.get("complete"), bool)
            and isinstance(doc.get("summary"), dict)):
        raise NotARound(f"{ROUND_FILE} lacks its counts or digests")
    for name, digest in files.items():
        if sha256_of(folder / name) != digest:
            raise NotARound(f"{name} is not the file the round wrote (its sha256 differs)")
    for log in logs:
        _check_log(log, folder, files)
    if logs[-1]["out"] != records:
        raise NotARound(f"{ROUND_FILE} counts {records} records but its log {logs[-1]['out']}")
    return Round(number, folder, records, logs, doc["summary"], doc["complete"], files)


def _check_log(log: Any, folder: Path, files: dict[str, str]) -> None:
    ok = isinstance(log, dict) and log.get("stage") in STAGES and isinstance(log.get("rejects"), str) \
        and _FILE_NAME.fullmatch(log["rejects"]) and all(isinstance(log.get(k), int) and log[k] >= 0
                                                          for k in ("in", "out")) \
        and isinstance(log.get("dropped"), dict) and set(log["dropped"]) <= set(DROP_KINDS) \
        and all(isinstance(v, int) and v >= 0 for v in log["dropped"].values())
    if not ok:
        raise NotARound(f"{ROUND_FILE} holds a log instructgen did not write")
    if log["in"] != log["out"] + sum(log["dropped"].values()):
        raise NotARound(f"{ROUND_FILE}: the {log['stage']} log does not balance")
    path = folder / log["rejects"]
    if log["rejects"] not in files:
        if sum(log["dropped"].values()):
            raise NotARound(f"{log['rejects']} is missing")
        return
    kinds = Counter()
    for n, line in enumerate(read_plain(path).splitlines(), 1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise NotARound(f"{log['rejects']}:{n} is not JSON") from None
        if not isinstance(entry, dict) or entry.get("stage") != log["stage"] \
                or not isinstance(entry.get("reason"), str):
            raise NotARound(f"{log['rejects']}:{n} is not a rejects entry of this round")
        kinds[entry.get("kind")] += 1
    if any(kinds.get(k, 0) != log["dropped"].get(k, 0) for k in DROP_KINDS):
        raise NotARound(f"{log['rejects']} does not hold the drops its log counts")


def rejects_entries(found: Round, name: str) -> Iterator[dict[str, Any]]:
    if name in found.files:
        for line in read_plain(found.folder / name).splitlines():
            yield orjson.loads(line)


def replay_log(log: dict[str, Any], found: Round, pool: Path) -> RunLog:
    """A finished round's log, rebuilt from its counts and its rejects file (written to the pool's copy)."""
    number = found.number
    name = f"round-{number:04d}.{log['rejects']}"
    replayed = RunLog(f"{log['stage']} round {number}", pool / name)
    for entry in rejects_entries(found, log["rejects"]):
        details = {k: v for k, v in entry.items() if k not in ("stage", "kind", "reason", "origin", "raw")}
        replayed.drop(str(entry.get("origin", "")), entry["reason"], entry.get("raw"), kind=entry["kind"],
                      **{**details, "generation_round": number})
    replayed.n_in, replayed.n_out = log["in"], log["out"]
    replayed.info.update(log.get("info") or {}, generation_round=number)
    replayed.close()
    return replayed


def log_entry(log: RunLog, folder: Path) -> dict[str, Any]:
    """What round.json keeps of one of the round's logs."""
    rejects = Path(log.rejects_path).name if log.rejects_path else "rejects.jsonl"
    info = orjson.loads(orjson.dumps(log.info, default=str))
    return {"stage": log.stage, "rejects": rejects, "in": log.n_in, "out": log.n_out,
            "dropped": {k: log.dropped[k] for k in DROP_KINDS}, "info": info}


def remove(path: Path) -> None:
    """Remove what is at PATH: a link as a link, a folder with what is in it."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# -- the run's round --------------------------------------------------------------------------------------------

@dataclass
class Grown:
    pool: Path  # generated.jsonl, the rounds' rejects and failures, rounds.json
    logs: list[RunLog]
    summary: dict[str, Any]


def grow(config: Any, cache_root: str | os.PathLike, lineage: str, announce=print) -> Grown:
    """The pool after this run's round: every earlier round read back (checked), this run's made or taken
    from the cache, then assembled in `pool/`. At most one round is generated per run."""
    cache_root = Path(cache_root)
    home = own_folder(own_folder(cache_root, "the generation cache") / f"grow-{lineage}",
                      "the growing generation's rounds")
    published = published_rounds(cache_root.parent, lineage)
    rounds: list[Round] = []
    made, stop = None, None
    for number in range(1, (config.grow_max_rounds or 1 << 30) + 1):
        size = sum(r.records for r in rounds)
        if config.grow_max_records and size >= config.grow_max_records:
            stop = f"the pool holds {size} records (grow_max_records {config.grow_max_records})"
            break
        wanted = min(config.num_instructions, (config.grow_max_records or 1 << 62) - size)
        folder = home / f"round-{number:04d}"
        inputs = _inputs_digest(lineage, number, wanted, rounds)
        try:
            found: Round | None = load_round(folder, number, lineage, inputs)
            _check_records(found, config)
        except NotARound as e:
            found = None
            if folder.exists() or folder.is_symlink():
                announce(f"generation round {number}: {folder} is not a finished round ({e}); it is made again "
                         "(answers already paid for come from the request cache)")
                remove(folder)
        if found is not None and found.complete and number <= published:
            rounds.append(found)
            continue
        if found is None or not found.complete:
            remove(folder)  # made from scratch: its answers come from the request cache, nothing left is trusted
            found = make_round(config, number, folder, lineage, inputs, wanted, rounds, cache_root)
        made = number  # made now, or by an earlier run that failed after making it (it published nothing)
        rounds.append(found)
        break
    else:
        stop = f"{len(rounds)} rounds made (grow_max_rounds {config.grow_max_rounds})"
    return assemble(config, home / POOL, lineage, rounds, made, stop, announce)


def _inputs_digest(lineage: str, number: int, wanted: int, earlier: list[Round]) -> str:
    """What round NUMBER is made from: the settings and seeds (the lineage), its size, every earlier round."""
    digest = hashlib.sha256(f"{lineage}:{number}:{wanted}".encode())
    for r in earlier:
        digest.update(read_plain(r.folder / ROUND_FILE, MAX_STATE_BYTES))
    return digest.hexdigest()


def _check_records(found: Round, config: Any) -> None:
    """Every record of the round parses in the generation's format (a planted row is refused)."""
    from ..convert import ReadOptions, read_records

    log = RunLog("generate-round-check")
    try:
        n = sum(1 for _ in read_records([str(found.folder / RECORDS)], log,
                                        ReadOptions(from_format=config.format, strict=True, announce=lambda m: None)))
    except InstructgenError as e:
        raise NotARound(f"a record does not parse: {e}") from None
    if n != found.records:
        raise NotARound(f"{RECORDS} holds {n} records, its round.json {found.records}")


def seed_files(config: Any, number: int, folder: Path, earlier: list[Round]) -> list[Path]:
    """Round NUMBER's seeds: the seed files and every earlier round's records (alpaca, self-instruct), or each
    root's latest kept evolution (evol: written to the round's seeds.jsonl)."""
    if number == 1:
        return list(config.seed_tasks)
    if config.mode != "evol":
        return [*config.seed_tasks, *(r.folder / RECORDS for r in earlier)]
    path = folder / SEEDS
    from ..io import write_text_atomic

    rows = [orjson.dumps(seed).decode() for seed in evol_frontier(config, earlier)]
    write_text_atomic(path, "".join(row + "\n" for row in rows))
    return [path]


def evol_frontier(config: Any, earlier: list[Round]) -> list[dict[str, Any]]:
    """The instructions the last round evolved, each replaced by its latest kept evolution (meta.evol.root
    names the seed it grew from); a format without meta: every kept evolution of the last round."""
    from ..convert import ReadOptions, read_records
    from ..generate.seeds import load_seed_tasks

    last = earlier[-1]
    if last.number > 1 and SEEDS not in last.files:
        raise InstructgenError(f"{last.folder}: an evol round without its seeds file ({SEEDS}); remove the folder "
                               "to have it made again")
    before = [last.folder / SEEDS] if last.number > 1 else list(config.seed_tasks)
    seeds = [{"instruction": s.instruction, "instances": [{"input": i, "output": o} for i, o in s.instances]}
             for s in load_seed_tasks(before)]
    latest: dict[int, tuple[int, dict[str, Any]]] = {}
    loose = []
    for conv in read_records([str(last.folder / RECORDS)], RunLog("generate-frontier"),
                             ReadOptions(from_format=config.format, strict=True, announce=lambda m: None)):
        turns = conv.turns
        seed = {"instruction": turns[0].content, "instances": [{"input": "", "output": turns[1].content}]}
        evol = conv.meta.get("evol") if isinstance(conv.meta.get("evol"), dict) else {}
        root = re.fullmatch(r"seed (\d+)", str(evol.get("root", "")))
        if root and int(root.group(1)) < len(seeds) and isinstance(evol.get("round"), int):
            n = int(root.group(1))
            if n not in latest or evol["round"] >= latest[n][0]:
                latest[n] = (evol["round"], seed)
        else:
            loose.append(seed)
    if loose and not latest:
        return loose
    return [latest[n][1] if n in latest else s for n, s in enumerate(seeds)]


def make_round(config: Any, number: int, folder: Path, lineage: str, inputs: str, wanted: int,
               earlier: list[Round], cache_root: Path) -> Round:
    """Generate round NUMBER into FOLDER (answers already paid for replayed from the request cache); its
    round.json is written last. Fewer records than asked because requests failed is an error."""
    from ..generate.budget import is_budget_stop
    from ..generate.config import GenerateConfig
    from ..generate.run import generate
    from ..io import write_text_atomic

    own_folder(folder, "a generation round")
    seeds = seed_files(config, number, folder, earlier)
    settings = config.model_dump(exclude={"enabled"})
    stage = GenerateConfig(**{**settings, "grow": False, "seed_tasks": seeds, "num_instructions": max(1, wanted),
                              "seed": config.seed + number - 1,
                              "cache_dir": config.cache_dir or cache_root / "requests"})
    log = RunLog("generate", folder / "rejects.jsonl")
    try:
        result = generate(stage, folder / RECORDS, log, failures_path=folder / FAILURES)
    finally:
        log.close()
    if result.failed:
        raise InstructgenError(f"generation round {number}: {result.shortfall()}")
    tag_records(folder / RECORDS, number, config)
    summary = orjson.loads(orjson.dumps(result.stats(), default=str))
    logs = [log_entry(lg, folder) for lg in result.logs]
    written = [RECORDS, SEEDS, FAILURES, *(lg["rejects"] for lg in logs)]
    doc = {"round": number, "lineage": lineage, "inputs": inputs, "records": result.records_written,
           "files": {name: sha256_of(folder / name) for name in written if (folder / name).is_file()},
           "complete": not (is_budget_stop(result.stop_reason) and result.instructions_kept < result.asked),
           "logs": logs, "summary": summary}
    write_text_atomic(folder / ROUND_FILE, orjson.dumps(doc).decode() + "\n")
    try:
        return load_round(folder, number, lineage, inputs)
    except NotARound as e:  # what we just wrote: a bug, not a planted file
        raise InstructgenError(f"generation round {number}: {folder} could not be read back ({e})") from None


def tag_records(path: Path, number: int, config: Any) -> None:
    """Each record of the round says which round made it (`meta.generation_round`, in formats that keep meta)."""
    from ..convert import ReadOptions, read_records, write_records
    from ..formats.base import DumpOptions
    from ..generate.seeds import GENERATION_ROUND
    from ..io import RowWriter

    log = RunLog("generate-round")
    tagged = path.with_name(path.name + ".tagged.jsonl")
    with RowWriter(str(tagged)) as writer:
        def records():
            for conv in read_records([str(path)], log, ReadOptions(from_format=config.format, strict=True,
                                                                     announce=lambda m: None)):
                conv.meta[GENERATION_ROUND] = number
                yield conv
        write_records(records(), writer, config.format, log, DumpOptions(layout=config.layout))
    os.replace(tagged, path)


def assemble(config: Any, pool: Path, lineage: str, rounds: list[Round], made: int | None, stop: str | None,
             announce) -> Grown:
    """pool/: every round's records in round order, their rejects and failures, rounds.json."""
    from ..io import write_text_atomic

    remove(pool)
    own_folder(pool, "the generated pool")
    logs, table, line = [], [], 0
    with open(pool / RECORDS, "wb") as out:
        for r in rounds:
            data = read_plain(r.folder / RECORDS)
            out.write(data if not data or data.endswith(b"\n") else data + b"\n")
            logs += [replay_log(lg, r, pool) for lg in r.logs]
            if FAILURES in r.files:
                (pool / f"round-{r.number:04d}.{FAILURES}").write_bytes(read_plain(r.folder / FAILURES))
            table.append({"round": r.number, "records": r.records,
                          "lines": [line + 1, line + r.records] if r.records else [],
                          "complete": r.complete, "made_this_run": r.number == made,
                          "requests_sent": (r.summary.get("usage") or {}).get("requests_sent", 0),
                          "cache_hits": (r.summary.get("usage") or {}).get("cache_hits", 0),
                          "stop_reason": r.summary.get("stop_reason")})
            line += r.records
    state = {"lineage": lineage, "rounds": table, "pool_records": line,
             "grown_this_run": made is not None, "stopped_growing": stop,
             "caps": {"grow_max_rounds": config.grow_max_rounds, "grow_max_records": config.grow_max_records}}
    write_text_atomic(pool / ROUNDS_FILE, orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
    this_run = f"round {made} made" if made else "no new round"
    announce(f"generation: {this_run}; the pool holds {line} records from {len(rounds)} rounds"
             + (f"; not growing: {stop}" if stop else ""))
    summary = {**(rounds[-1].summary if made else {}), "grow": state}
    return Grown(pool, logs, summary)
