"""The chat client against the local LLM test double: retries, faults, attempt cap, cache, rate limiter;
the retry policy's wait and what counts as a usable answer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from types import SimpleNamespace

from instructgen.errors import InstructgenError
from instructgen.generate import limits as limits_mod
from instructgen.generate.cache import RequestCache
from instructgen.generate.client import ChatClient, ChatRequest, scrub
from instructgen.generate.config import ClientConfig
from instructgen.generate.limits import RateLimiter
from instructgen.generate.retry import (AttemptFailed, BadAnswer, ResponseFormatRejected, parse_completion,
                                        retry_after_seconds, wait_retry_after)
from llm_double import LLMDouble, Reply

SECRET = "sk-test-DO-NOT-LEAK-1234567890"


def _request(n: int, **extra) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"Task 1: Say hello number {n}.\nTask 2: Count to {n}."}],
                       {"temperature": 1.0, "seed": n, "max_tokens": 200, **extra}, tag=f"r{n}")


def _run(double: LLMDouble, requests: list[ChatRequest], cache=None, **cfg):
    async def go():
        c = ChatClient(ClientConfig(base_url=double.base_url, model="double", retry_backoff=0.01, **cfg), SECRET, cache)
        try:
            return await asyncio.gather(*(c.complete(r) for r in requests)), c
        finally:
            await c.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("fault", ["429", "500"])
def test_transient_http_errors_are_retried(fault):
    with LLMDouble(faults={fault: 1.0}, retry_after="0") as double:
        results, c = _run(double, [_request(i) for i in range(6)], concurrency=3)
    assert all(r.ok and r.attempts == 2 for r in results)
    assert c.usage.retries == 6 and c.usage.errors == {fault: 6} and c.usage.failures == 0
    assert sorted(double.hits.values()) == [2] * 6 and sorted(double.served.values()) == [1] * 6


def test_slow_answer_past_the_timeout_is_retried():
    with LLMDouble(faults={"slow": 1.0}, slow_seconds=1.5) as double:
        results, c = _run(double, [_request(1)], timeout=0.3)
    assert results[0].ok and results[0].attempts == 2 and c.usage.errors == {"timeout": 1}


def test_attempt_cap_records_the_failure_without_the_key():
    with LLMDouble(faults={"500": 1.0}, transient_times=99) as double:
        results, c = _run(double, [_request(1)], max_attempts=3)
    r = results[0]
    assert not r.ok and r.attempts == 3 and "gave up after 3 attempts" in r.error and "500" in r.error
    assert double.total_hits == 3
    assert c.failures[0]["tag"] == "r1" and SECRET not in repr(c.failures)


def test_response_format_400_raises_for_the_fallback():
    with LLMDouble(reject_response_format=True) as double:
        with pytest.raises(ResponseFormatRejected):
            _run(double, [_request(1, response_format={"type": "json_object"})])
        results, _ = _run(double, [_request(1)])
    assert results[0].ok


def test_cache_replays_without_a_request_and_never_stores_the_key(tmp_path):
    cache = RequestCache(tmp_path / "cache")
    with LLMDouble() as double:
        first, c1 = _run(double, [_request(i) for i in range(4)], cache=cache)
        hits = double.total_hits
        second, c2 = _run(double, [_request(i) for i in range(4)], cache=cache)
        assert double.total_hits == hits  # nothing sent again
    assert [r.text for r in first] == [r.text for r in second] and all(r.cached for r in second)
    assert c2.usage.cache_hits == 4 and c2.usage.prompt_tokens == 0 and c2.usage.cached_prompt_tokens > 0
    cache.close()
    for f in (tmp_path / "cache").iterdir():
        assert SECRET.encode() not in f.read_bytes()
    db = sqlite3.connect(tmp_path / "cache" / "requests.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_key_is_a_one_line_error_without_the_key():
    class Refusing(LLMDouble):
        def answer(self, body, headers=None):
            return Reply(401, {"error": {"message": f"Incorrect API key provided: {SECRET}"}})

    with Refusing() as double:
        with pytest.raises(InstructgenError) as e:
            _run(double, [_request(1)])
    assert "--api-key-env" in str(e.value) and SECRET not in str(e.value)


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_seconds({}) is None


def test_rate_limiter_paces_requests_on_a_fake_clock(monkeypatch):
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(limits_mod.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(limits_mod.asyncio, "sleep", fake_sleep)

    async def go():
        limiter = RateLimiter(per_minute=60)  # one a second, bursts of 6
        for _ in range(16):
            await limiter.acquire(1)
    asyncio.run(go())
    # 6 go at once, the other 10 wait one second each
    assert len(slept) == 10 and now[0] == pytest.approx(10.0)


def _state(attempt: int, exc: BaseException) -> SimpleNamespace:
    return SimpleNamespace(attempt_number=attempt, outcome=SimpleNamespace(exception=lambda: exc))


def test_retry_after_is_honoured_up_to_the_cap_and_backoff_grows_to_its_own_cap():
    wait = wait_retry_after(backoff=1.0, cap=ClientConfig().max_retry_after)
    assert ClientConfig().max_retry_after == 120
    assert wait(_state(1, AttemptFailed("429", "x", retry_after=86400))) == 120  # a day, cut to the cap
    assert wait(_state(1, AttemptFailed("429", "x", retry_after=5))) >= 5
    no_hint = [wait(_state(n, AttemptFailed("500", "x"))) for n in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 60 for w in no_hint) and max(no_hint[-20:]) > 1  # full jitter, capped at 60
    assert wait_retry_after(backoff=0.0, cap=0.5)(_state(3, AttemptFailed("429", "x", retry_after=9))) == 0.5


@pytest.mark.parametrize("body, why", [
    (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "an HTML page"),
    (b"\x00\xff garbage", "not JSON"),
    (b'{"choices": [{"message": {"content": "ok"', "not JSON"),  # truncated
    (b'{"choices": []}', "no choices"),
    (b'{"error": {"message": "upstream"}}', "no choices"),
    (b'{"choices": [{"message": {"role": "assistant", "content": null}}]}', "null content"),
    (b'{"choices": [{"message": {"content": null, "refusal": "I cannot"}}]}', "refused: I cannot"),
    (b'{"choices": [{"message": {"content": "  "}}]}', "empty content"),
    (b'[1, 2]', "no choices"),
])
def test_bad_200_bodies_are_bad_answers_with_their_raw_text(body, why):
    with pytest.raises(BadAnswer) as e:
        parse_completion(body)
    assert e.value.kind == f"bad answer: {why}" and e.value.raw == body.decode("utf-8", "replace")


def test_a_usable_completion_is_read_with_its_usage():
    done = parse_completion(b'{"choices": [{"message": {"content": "Hi"}, "finish_reason": "length"}], '
                            b'"usage": {"prompt_tokens": 3, "completion_tokens": 1}}')
    assert (done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens) == ("Hi", "length", 3, 1)
    assert parse_completion(b'{"choices": [{"message": {"content": "Hi"}}], "usage": null}').prompt_tokens == 0


def test_scrub_removes_the_key_bearer_tokens_and_key_shapes():
    text = f"key {SECRET} | Authorization: Bearer abc.def-123 | other sk-proj-ABCDEFGHIJKLMNOP here"
    clean = scrub(text, SECRET)
    assert SECRET not in clean and "abc.def-123" not in clean and "ABCDEFGHIJKLMNOP" not in clean
    assert clean.startswith("key *** | Authorization: Bearer *** | other sk-*** here")


def test_time_queued_for_a_concurrency_slot_does_not_count_against_a_request():
    # one at a time: the last waits ~1.75 s for its slot, longer than a request may take (1.2 s), which leaves
    # each request itself about a second of slack on a loaded machine
    with LLMDouble(latency=0.25) as double:
        results, c = _run(double, [_request(i) for i in range(8)], concurrency=1, max_request_seconds=1.2)
    assert all(r.ok and r.attempts == 1 for r in results) and c.usage.errors == {}


def test_the_body_on_the_wire_is_the_one_the_sdks_typed_create_sends():
    """The client posts through the SDK's `post` without its TypedDict transform: for every kind of request
    the modes send, the endpoint receives the same JSON body and the same key as from `chat.completions.create`."""
    from openai import AsyncOpenAI

    requests = [_request(1), _request(2, response_format={"type": "json_object"}, top_p=0.9),
                ChatRequest([{"role": "system", "content": "Be brief. 用中文回答"}, {"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "[END]?"}],
                            {"temperature": 0.0, "top_p": 1.0, "max_tokens": 3072, "seed": 2**31 - 1})]
    seen: list[tuple[dict, str]] = []
    with LLMDouble(planted_rate=0.0) as double:
        answer = double.answer
        double.answer = lambda body, headers: (seen.append((body, {k.lower(): v for k, v in headers.items()}
                                                             .get("authorization"))),
                                               answer(body, headers))[1]
        results, _ = _run(double, requests)

        async def typed():
            sdk = AsyncOpenAI(api_key=SECRET, base_url=double.base_url, max_retries=0)
            for r in requests:
                await sdk.chat.completions.create(model="double", messages=r.messages, **r.params)
            await sdk.close()
        asyncio.run(typed())
    assert all(r.ok for r in results) and len(seen) == 2 * len(requests)
    ours, theirs = sorted(seen[:3], key=str), sorted(seen[3:], key=str)
    assert ours == theirs and all(auth == f"Bearer {SECRET}" for _, auth in seen)


def _plant_cache(folder, answer: str) -> Path:
    """A requests.sqlite holding a fake answer for request 0, as another user could leave it."""
    cache = RequestCache(folder)
    cache.put("planted", {"text": answer})
    cache.close()
    return Path(folder) / RequestCache.FILE


@pytest.mark.parametrize("how, said", [
    (lambda p: os.chmod(p, 0o666), "can be written by other users"),
    (lambda p: os.chmod(p, 0o620), "can be written by other users"),
    (lambda p: (os.replace(p, p.with_name("real.sqlite")), os.symlink(p.with_name("real.sqlite"), p)),
     "is a symbolic link"),
])
def test_a_cache_others_could_have_written_is_refused(tmp_path, how, said):
    path = _plant_cache(tmp_path / "cache", "planted answer")
    how(path)
    with pytest.raises(InstructgenError) as refused:
        RequestCache(tmp_path / "cache")
    assert str(path) in str(refused.value) and said in str(refused.value) and "chmod go-w" in str(refused.value)


def test_a_planted_wal_file_is_refused_too(tmp_path):
    (tmp_path / "cache").mkdir()
    wal = tmp_path / "cache" / f"{RequestCache.FILE}-wal"
    wal.write_bytes(b"")
    os.chmod(wal, 0o666)
    with pytest.raises(InstructgenError, match="-wal can be written by other users"):
        RequestCache(tmp_path / "cache")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_cache_of_another_user_is_refused(tmp_path):
    path = _plant_cache(tmp_path / "cache", "planted answer")
    os.chown(path, 4242, 4242)
    with pytest.raises(InstructgenError, match="belongs to another user \\(uid 4242\\)"):
        RequestCache(tmp_path / "cache")


def test_ones_own_private_cache_is_reopened(tmp_path):
    _plant_cache(tmp_path / "cache", "my answer")
    cache = RequestCache(tmp_path / "cache")
    assert cache.get("planted") == {"text": "my answer"}
    cache.close()
