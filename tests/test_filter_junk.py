"""The junk measures (curate/junk.py): token salad, loops of any unit, placeholders, mojibake; and what must survive."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from instructgen.cli import main
from instructgen.curate import junk
from instructgen.curate.filter import FilterConfig, judge_record
from instructgen.formats.base import single_turn

DATA = Path(__file__).parent / "data_curate"
# the shape of a broken model's output (issue 18): stray closing braces, word pieces, identifiers, glued symbols
PIECES = ["}", " }", " } }", " verify", " }:param", " withObject", " }pressive", " ancell", " Kob", "ELD", "();",
          " qual", "ifies", " ptr", " Listener", " ucas", "_REF", " ->", "][", " getString", " ingr", "edients", "(\"",
          " uint", "ancia", " Ter", "rain", " the", " of", " olu", "});", " }}"]


def salad(rng: random.Random, tokens: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(tokens))


def test_token_salad_of_that_shape_is_caught():
    rng = random.Random(0)
    answers = [salad(rng, rng.randint(12, 400)) for _ in range(300)]
    caught = sum(judge_record(single_turn("Summarize the article.", "", a), FilterConfig()).rule == "salad"
                 for a in answers)
    assert caught >= 0.99 * len(answers)


@pytest.mark.parametrize("text", [
    "The mitochondria is the powerhouse of the cell; it makes ATP from glucose and oxygen.",
    "Use `df.groupby('a').sum()` and then call `reset_index()` on the result.",
    "```python\ndef f(x):\n    return {k: v for k, v in x.items() if v}\n```\nThis keeps the truthy values.",
    "The answer is $\\frac{3}{4}$, since $x^2 + y^2 = 1$ and $x = \\sqrt{7}/4$.",
    "Visit https://example.com/a/b?c=d or write to help@example.com for the forms.",
    "Angela Merkel met Xi Jinping and Narendra Modi in Osaka; NATO and the G20 followed.",
    "光合作用是植物利用阳光把二氧化碳和水转化为有机物并释放氧气的过程。",
    "Die Katze schläft auf dem Sofa, während der Hund im Garten spielt und bellt.",
    "{\n  \"name\": \"Ada\",\n  \"langs\": [\"en\", \"fr\"],\n  \"age\": 36\n}",
])
def test_real_text_is_not_salad(text):
    assert junk.is_salad(text) is None, junk.salad_share(text)


@pytest.mark.parametrize("text", [
    "Sincerely, " * 60,  # one token
    "The man walked into the room.\n" * 12,  # one line
    "I think you should talk to him about it. " * 10,  # one sentence
    "\n".join(f"{i}. Click on the \"Document Content\" button." for i in range(1, 20)),  # one numbered line
    "😀🎬🍿 " * 40,  # emoji
    "我爱你中国，" * 20,
])
def test_loops_of_any_unit_are_caught(text):
    assert junk.is_loop(text) is not None


@pytest.mark.parametrize("text", [
    "\n".join(f"Step {i}: multiply {i} by 2 to get {2 * i}." for i in range(1, 12)),  # parallel steps differ in numbers
    "| name | qty |\n|---|---|\n" + "| apple | 1 |\n" * 10,  # table rows
    "```\n" + "print('hello')\n" * 12 + "```\nThis prints hello twelve times.",  # code
    "\n".join(f"- What is the capital of {c}?" for c in ("France", "Spain", "Italy", "Peru", "Chile", "Japan")),
    "(Chorus)\nWe rise, we fall, we rise again\n(Verse)\nThe road is long\n(Chorus)\nWe rise, we fall, we rise again",
])
def test_structure_survives(text):
    assert junk.is_loop(text) is None, junk.loop_shares(text)


def test_copies_the_prompt_asks_for_are_allowed_and_no_more():
    five = "I like apples.\n" * 5
    assert junk.is_loop(five, "Repeat this sentence five times: I like apples") is None
    assert junk.is_loop("我喜欢吃苹果。\n" * 3, "帮我把这句话重复3遍“我喜欢吃苹果”") is None
    assert junk.is_loop("yes " * 40, "Repeat after me.") is not None  # the bundled example: one copy was asked for
    assert junk.is_loop("Sincerely, " * 60, "We get tired of repeating ourselves. Synonyms for:") is not None


def test_placeholders():
    assert junk.placeholder("I am {{name}}, made by {{author}}.", "Who are you?") == "{{name}}"
    assert junk.placeholder("Dear [INSERT NAME],", "Write a letter.") == "[INSERT NAME]"
    assert junk.placeholder("Hello {{ user.name }}", "Write a Jinja template.") is None
    assert junk.placeholder("```html\n<p>{{ msg }}</p>\n```", "Show a Vue component.") is None


def test_mojibake_is_found_by_ftfy_and_accents_are_not():
    assert junk.mojibake("Set in 1900s Belle Ã\x89poque Paris, ChÃ©ri tells the story")
    assert not junk.mojibake("Café Müller in São Paulo serves crème brûlée.")
    assert not junk.mojibake("中文文本，没有问题。")


def test_the_word_lists_ship_inside_the_wordfreq_wheel():
    import wordfreq

    data = Path(wordfreq.__file__).parent / "data"
    assert (data / "large_en.msgpack.gz").is_file() and (data / "small_zh.msgpack.gz").is_file()
    assert "photosynthesis" in junk._words("en") and "光" in junk._han_chars()


def test_the_junk_fixture_through_the_cli(tmp_path, capsys):
    out = tmp_path / "clean.jsonl"
    assert main(["filter", str(DATA / "junk_measures.jsonl"), "-o", str(out)]) == 0
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept and all(r["expect"] == "" for r in kept)
    rejects = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["reason"] for r in rejects) == sorted(
        r["expect"] for r in map(json.loads, (DATA / "junk_measures.jsonl").read_text(encoding="utf-8").splitlines())
        if r["expect"])
    assert "salad" in capsys.readouterr().err


def test_the_bundled_example_loses_its_yes_loop_and_flags_its_refusals(tmp_path):
    example = Path(__file__).resolve().parent.parent / "data" / "examples" / "raw_en_zh.jsonl"
    out = tmp_path / "clean.jsonl"
    assert main(["filter", str(example), "-o", str(out)]) == 0
    rejects = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(r["reason"], r["raw"]["instruction"]) for r in rejects} >= {("repetition", "Repeat after me.")}
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sum(f["rule"] == "refusal" for r in kept for f in (r.get("meta") or {}).get("flags", [])) == 2
