"""Near-dedup that knows a different task: parts compared each on its own, order and identifiers count,
tool calls in the keys, a reviewable clusters file, and the index's size and purity."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from instructgen.cli import main
from instructgen.curate.dedup import (
    EXACT, NEAR, DedupConfig, Sketches, cluster, dedup_records, sketch, sketch_records,
)
from instructgen.curate.text import compact_diff, identifiers
from instructgen.record import Conversation, Message, ToolCall, from_pairs
from instructgen.runlog import RunLog

from conftest import shared_path

PASSAGE = ("The Amazon rainforest covers much of the Amazon basin of South America. The basin encompasses seven "
           "million square kilometres, of which five and a half million are covered by the rainforest. The region "
           "includes territory belonging to nine nations and thousands of indigenous territories. The majority of "
           "the forest lies within Brazil, followed by Peru and Colombia, with minor amounts in other countries.")


def rec(prompt: str, response: str, origin: str = "") -> Conversation:
    return from_pairs([(prompt, response)], origin=origin)


def kept_origins(records: list[Conversation], **settings) -> list[str]:
    return [c.origin for c in dedup_records(records, DedupConfig(**settings), RunLog("dedup"))]


def decide(texts: list, **settings) -> list[int]:
    cfg = DedupConfig(**settings)
    return cluster([sketch(texts, cfg)], cfg).dup_of.tolist()


# -- what is compared ---------------------------------------------------------------------------------

def test_shared_passage_with_different_questions_is_kept():
    a = rec(PASSAGE + "\nQuestion: Which country holds most of the forest?", "Brazil.", "a")
    b = rec(PASSAGE + "\nQuestion: How many nations share the region?", "Nine nations.", "b")
    assert kept_origins([a, b]) == ["a", "b"]
    # comparing prompts only, the shared passage no longer makes them alike: the questions are compared on their own
    assert kept_origins([a, b], fields="instruction") == ["a", "b"]


def test_a_near_duplicate_needs_every_part_near_identical():
    prompt = "Write a short poem about the sea at night, with the moon and a lighthouse in it."
    answer = "The moon lies silver on the tide,\nthe lighthouse turns its patient eye,\nand waves keep time."
    other = "Dark water hums below the pier;\na single beam sweeps left and right\nwhile gulls sleep on the wind."
    reworded = "Write a short poem about the sea at night, with the moon and one lighthouse in it."
    same_answer = rec(reworded, answer, "same")
    new_answer = rec(reworded, other, "new")
    assert kept_origins([rec(prompt, answer, "orig"), same_answer]) == ["orig"]
    assert kept_origins([rec(prompt, answer, "orig"), new_answer]) == ["orig", "new"]
    assert kept_origins([rec(prompt, answer, "orig"), new_answer], fields="instruction") == ["orig"]


def test_fields_join_parts_with_plus():
    a = rec("Name a colour of the sky on a clear summer day at noon.", "Blue, a clear light blue.", "a")
    b = rec("Name a colour of the sky on a clear summer day at noon.", "Grey on some days.", "b")
    assert kept_origins([a, b], fields="instruction+output") == ["a", "b"]
    assert kept_origins([a, b], fields="instruction") == ["a"]


# -- order and identifiers --------------------------------------------------------------------------------

def test_word_order_counts():
    texts = ["Convert 5 dollars to euros", "Convert 5 euros to dollars"]
    assert decide(texts) == [-1, -1]
    assert decide(texts, shingle="word:1") == [-1, 0]  # as bags of words they are one


def test_numbers_count():
    # the pair the issue found scored 1.0 as bags of words
    a = "What is fifteen more than a quarter of 48? A quarter of 48 is 48/4=12. The number is 12+15=27."
    b = "Fifteen more than a quarter of a number is 27. What is the number? A quarter of the number is 27-15=12."
    assert decide([a, b]) == [-1, -1]
    assert decide(["Find the square root of 256 using Python.", "Find the square root of 625 using Python."]) == [-1, -1]
    assert decide(["Find the derivative of 3x^2 + 2x - 1 with wolfram.",
                   "Find the derivative of 3x^2 + 2x + 1 with wolfram."]) == [-1, -1]
    assert decide(["Find the square root of 256 using Python and print the result with two decimals.",
                   "Find the square root of 256 using Python and show the result with two decimals."]) == [-1, 0]


def test_quoted_literals_and_urls_count():
    assert decide(["Translate 'good morning' into French, please, and keep it polite.",
                   "Translate 'good night' into French, please, and keep it polite."]) == [-1, -1]
    assert decide(["Summarize the article at https://example.com/a for a teenage reader.",
                   "Summarize the article at https://example.com/b for a teenage reader."]) == [-1, -1]
    assert decide(["Translate 'good morning' into French, please, and keep it polite.",
                   "Translate 'good morning' into French please and keep it very polite."]) == [-1, 0]
    # without the rule only the estimate decides: a record long enough that one changed content word is little
    # (a short one is kept apart by its content words, test_dedup_rules.py)
    long = ["Translate the greeting '{}' into formal French for a hotel receptionist who welcomes business "
            "travellers, and keep the tone polite, warm and short."]
    pair = [long[0].format("good morning"), long[0].format("good night")]
    assert decide(pair) == [-1, -1]
    assert decide(pair, identifiers=False) == [-1, 0]


def test_identifiers():
    assert identifiers("no numbers here") == ""
    assert identifiers("mp3 and w12 are words, GPT-4 has a sign") == "-4"
    assert identifiers("x - 1 and x-1 and x + 1") == "+1 -1 -1"
    assert identifiers("see https://example.com/page. or www.x.org?") == "https://example.com/page www.x.org"
    assert identifiers("Einstein's life, Newton's laws") == ""  # apostrophes are not quotes
    assert identifiers("wikipedia('Battle of Hastings') and 《红楼梦》") == "q:battle of hastings q:红楼梦"
    assert identifiers("ＦＵＬＬ　１２３") == "123"


# -- tools ---------------------------------------------------------------------------------------------

def tool_chat(name: str, city: str, origin: str) -> Conversation:
    return Conversation([
        Message("user", f"What's the weather like in {city} this afternoon? I want to go for a long walk."),
        Message("assistant", "", tool_calls=[ToolCall(name, json.dumps({"city": city}))]),
        Message("tool", '{"forecast": "sunny"}', name=name),
        Message("assistant", "It will be sunny this afternoon, a good time for a long walk."),
    ], tools=[{"name": name, "description": "Get the weather forecast for a city"}], origin=origin)


def test_tool_names_are_part_of_the_exact_key():
    a, b = tool_chat("get_forecast", "Paris", "a"), tool_chat("get_weather_forecast", "Paris", "b")
    cfg = DedupConfig()
    c = cluster([sketch_records([a, b, tool_chat("get_forecast", "Paris", "c")], cfg)], cfg)
    assert c.stage.tolist() == [0, 0, EXACT] and c.dup_of.tolist() == [-1, -1, 0]


def test_near_duplicates_make_the_same_tool_calls():
    a, b = tool_chat("get_forecast", "Paris", "a"), tool_chat("get_forecast", "Lyon", "b")
    assert kept_origins([a, b]) == ["a", "b"]
    assert kept_origins([a, b], tool_calls=False, identifiers=False, threshold=0.6) == ["a"]


# -- the review file ---------------------------------------------------------------------------------------

def test_clusters_file_keeps_whole_texts_and_a_diff(tmp_path):
    answer = "Brazil holds the largest share of the Amazon rainforest, followed by Peru and Colombia."
    a = rec(PASSAGE + "\nWhich country holds most of the forest?", answer, "a")
    b = rec(PASSAGE + "\nWhich country holds the most of the forest?", answer, "b")
    out = tmp_path / "clusters.jsonl"
    dedup_records([a, b], DedupConfig(), RunLog("dedup"), clusters_path=str(out))
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["origin"] == "b" and row["duplicate_of"] == "a" and row["stage"] == "near"
    assert row["text"]["prompt"] == b.messages[0].content and len(row["text"]["prompt"]) > 400
    assert row["kept_text"]["prompt"] == a.messages[0].content
    assert "{+the +}most" in row["diff"]["prompt"] and row["diff"]["response"] == ""
    assert set(row["parts"]) == {"prompt", "response"} and row["parts"]["response"] == 1.0
    assert row["similarity"] == min(row["parts"].values())


def test_compact_diff():
    assert compact_diff("same text", "same text") == ""
    assert compact_diff("a b c", "a b c d") == "a b c{+ d+}"
    long_a = "one two three four five six seven eight nine ten eleven twelve"
    long_b = "one two three four five six SEVEN eight nine ten eleven twelve"
    assert compact_diff(long_a, long_b) == "… three four five six [-seven-]{+SEVEN+} eight nine ten eleven …"
    assert compact_diff("夏天的野餐", "夏日的野餐") == "夏[-天-]{+日+}的野餐"


# -- the index ----------------------------------------------------------------------------------------------

def test_index_is_528_bytes_a_record_with_two_parts():
    records = [rec(f"Task number {k}: describe topic {k % 7}.", f"Answer {k}.") for k in range(50)]
    sk = sketch_records(records, DedupConfig())
    assert sk.sigs.shape == (50, 2, 128)
    assert sum(a.nbytes for a in (sk.keys, sk.sigs, sk.lengths, sk.anchors)) == 528 * 50


def test_two_part_sketches_do_not_depend_on_the_sharding():
    records = [rec(f"Explain topic {k % 40} to a {['child', 'student', 'expert'][k % 3]} in simple words.",
                   f"Here is an explanation of topic {k % 40}.") for k in range(300)]
    cfg = DedupConfig()
    whole = sketch_records(records, cfg)
    shards = [sketch_records(records[a:b], cfg) for a, b in ((0, 1), (1, 120), (120, 300))]
    merged = Sketches.concat(shards)
    for name in ("keys", "sigs", "lengths", "anchors"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name))
    assert np.array_equal(cluster(shards, cfg).dup_of, cluster([whole], cfg).dup_of)
    assert (cluster([whole], cfg).stage == NEAR).any() or (cluster([whole], cfg).stage == EXACT).any()


words = st.text(alphabet=st.sampled_from("abcdefg 12,.'\"天地人"), min_size=0, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=8))
def test_a_records_sketch_is_a_function_of_the_record_alone(rows):
    cfg = DedupConfig(num_perm=32)
    together = sketch(rows, cfg)
    for k, row in enumerate(rows):
        alone = sketch([row], cfg)
        assert together.keys[k] == alone.keys[0] and together.anchors[k] == alone.anchors[0]
        assert np.array_equal(together.sigs[k], alone.sigs[0])


@settings(max_examples=60, deadline=None)
@given(words.filter(lambda t: any(c.isalnum() for c in t)),
       st.sampled_from([str.upper, str.lower, lambda t: "  " + t.replace(" ", "  ") + " !"]))
def test_exact_key_ignores_case_spacing_and_punctuation(text, change):
    cfg = DedupConfig(num_perm=16)
    sk = sketch([(text, "ok"), (change(text), "OK.")], cfg)
    assert sk.keys[0] == sk.keys[1]


# -- the command and real records -------------------------------------------------------------------------

def test_cli_dedup_clusters_file_with_default_fields(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    rows = [{"instruction": PASSAGE + "\nWhich country holds most of the forest?", "input": "", "output": "Brazil."},
            {"instruction": PASSAGE + "\nHow many nations share the region?", "input": "", "output": "Nine."},
            {"instruction": PASSAGE + "\nWhich country holds the most of the forest?", "input": "", "output": "Brazil."}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out, clusters = tmp_path / "out.jsonl", tmp_path / "clusters.jsonl"
    assert main(["dedup", str(src), "-o", str(out), "--clusters", str(clusters)]) == 0
    assert "dedup: in 3 = out 2 + duplicates 1" in capsys.readouterr().err
    (row,) = [json.loads(line) for line in clusters.read_text(encoding="utf-8").splitlines()]
    assert row["origin"].endswith(":3") and row["duplicate_of"].endswith(":1")
    assert row["text"]["prompt"].startswith(PASSAGE) and row["diff"]["prompt"]


def test_real_duplicates_found_by_reading():
    from instructgen.convert import ReadOptions, read_records

    quiet = ReadOptions(announce=lambda _m: None)
    dpo = list(read_records([str(shared_path("real", "llamafactory_dpo_zh_demo.json"))], RunLog("read"), quiet))
    removed = {c.origin.rsplit(":", 1)[1] for c in dpo} - {c.origin.rsplit(":", 1)[1] for c in
                                                           dedup_records(dpo, DedupConfig(), RunLog("dedup"))}
    # eleven rows appear twice, prompt, chosen and rejected alike (benchmarks/judgements/dedup_pairs.jsonl)
    assert removed == {"1374", "2270", "3502", "3638", "3690", "3946", "4034", "4150", "4366", "4518", "5042"}
    glaive = {c.origin.rsplit(":", 1)[1]: c for c in read_records(
        [str(shared_path("formats", "llamafactory_glaive_toolcall_en_demo.json"))], RunLog("read"), quiet)}
    # the same password dialogue calling generate_password vs generate_random_password: not an exact copy
    cfg = DedupConfig()
    c = cluster([sketch_records([glaive["1514"], glaive["3106"]], cfg)], cfg)
    assert c.stage.tolist()[1] != EXACT
