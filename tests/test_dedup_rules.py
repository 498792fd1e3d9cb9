"""What near-dedup must tell apart and what it must still merge (issue 18): one content word in a short
record, tool calls written in text, the final answer of a dialogue, questions on a shared passage, and
numbers written as words. Every rule lives in dedup.sketch / dedup.cluster, so the in-memory and the
two-pass paths decide alike (checked on the reading-comprehension set)."""

from __future__ import annotations

import random

import orjson
import pytest

from instructgen.convert import ReadOptions, read_records
from instructgen.curate import dedup_text
from instructgen.curate.dedup import DedupConfig, cluster, dedup_records, sketch
from instructgen.curate.dedup_files import LocalRunner, dedup_files
from instructgen.formats.base import single_turn
from instructgen.io import RowWriter
from instructgen.record import Conversation, Message
from instructgen.runlog import RunLog


def decide(texts: list, **settings) -> list[int]:
    cfg = DedupConfig(**settings)
    return cluster([sketch(texts, cfg)], cfg).dup_of.tolist()


def kept(records: list[Conversation], **settings) -> list[str]:
    return [c.origin for c in dedup_records(records, DedupConfig(**settings), RunLog("dedup"))]


# -- one content word in a short record --------------------------------------------------------------

def test_one_content_word_keeps_short_records_apart():
    assert decide(["What do cows eat in the field all day? They eat grass.",
                   "What do cows eat in the field all day? They eat hay."]) == [-1, -1]
    assert decide(["Name a fruit that is yellow and that grows on a tree.",
                   "Name a fruit that is orange and that grows on a tree."]) == [-1, -1]
    for seed in range(20):  # settled by the words themselves, not by the luck of an estimate
        assert decide(["What do cows eat in the field all day? They eat grass.",
                       "What do cows eat in the field all day? They eat hay."], seed=seed) == [-1, -1]


@pytest.mark.parametrize("copy", [
    "What do cows eat in the field all day? They eat the grass.",  # a function word
    "Please, what do cows eat in the field all day? They eat grass.",  # asking nicely
    "What do cows eat in the feild all day? They eat grass.",  # a typo (letters swapped)
    "what do cows eat in the field all day ?  they eat grass",  # case, spacing, punctuation
])
def test_a_short_record_still_merges_with_its_copy(copy):
    assert decide(["What do cows eat in the field all day? They eat grass.", copy]) == [-1, 0]


def test_content_words_read_up_to_a_letter_swap():
    tok = dedup_text.tokens(["receive the grass", "recieve the grass", "receive the hay"])
    starts = [0, 3, 6]
    skel = [set(tok.skeleton[s:s + 3][tok.content[s:s + 3]].tolist()) for s in starts]
    assert skel[0] == skel[1] != skel[2]
    assert not tok.content[1]  # "the"


# -- tool calls written in text -----------------------------------------------------------------------

TOOL = ("toolformer: enabled\ntoolformer access: python\nA Python shell. Use this to execute python commands. "
        "Input should be a valid python command or script. If you expect output it should be printed out. Useful "
        "for all code, as well as math calculations.\npython(codetoexecute)\n")


def test_tool_calls_in_text_are_identifiers():
    a = single_turn(TOOL + "Show the first 5 prime numbers", "", "The first 5 prime numbers are: python('[2, 3, 5, 7, 11]')")
    b = single_turn(TOOL + "Show the first 5 prime numbers", "", "The first 5 prime numbers are: python('2*3*5*7*11')")
    a.origin, b.origin = "a", "b"
    assert kept([a, b]) == ["a", "b"]
    found = dedup_text.identifiers_batch(["use Calculator(2 * 3) now", "use Calculator(2*3) now", "use Calculator(3*2)"])
    assert found[0] == found[1] != found[2]
    assert "c:calculator(2*3)" in found[0]


def test_the_same_tool_call_with_other_spacing_merges():
    a = single_turn(TOOL + "Show the first 5 prime numbers", "", "The first 5 prime numbers are: python('[2, 3, 5, 7, 11]')")
    b = single_turn(TOOL + "Show the first 5 prime numbers.", "", "The first 5 prime numbers are: python('[2,3,5,7,11]')")
    a.origin, b.origin = "a", "b"
    assert kept([a, b]) == ["a"]


def test_a_query_argument_is_read_by_its_content_words():
    """A call whose argument is a query in words is the same call worded otherwise; code, formulas, command
    flags and addresses are compared as written (up to case and spacing)."""
    calls = dedup_text.tool_calls
    assert calls("weather('What is the current weather in Paris?')") == calls("weather('current weather in Paris')")
    assert calls("weather('weather in Paris')") != calls("weather('weather in Lyon')")
    assert calls("search('flights from Paris to Lyon')") != calls("search('flights from Lyon to Paris')")  # order
    assert calls("search('three tips')") == calls("search('3 tips')")
    assert calls("weather('What's the weather in Paris?')") == calls("weather('weather in Paris')")  # apostrophe
    for a, b in [("Calculator(2*3)", "Calculator(3*2)"), ("Calculator(2*3)", "Calculator(2/3)"),
                 ("shell('ls -a')", "shell('ls')"), ("python('x - 1')", "python('x + 1')"),
                 ("request('https://a.org/x')", "request('https://a.org/y')"), ("f('a', 'b')", "f('a b')")]:
        assert calls(a) != calls(b), (a, b)


WEATHER = ("toolformer: enabled\ntoolformer access: weather\nUseful for when you want to get weather information "
           "from the OpenMeteo API. The input should be a question in natural language that this API can answer.\n"
           "weather(querywithlocation)\n")


def test_the_same_query_worded_otherwise_merges_and_another_place_does_not():
    a = single_turn(WEATHER + "What is the weather like in New York City right now?", "",
                    "The current weather in New York City is weather('What is the current weather in New York City?').")
    b = single_turn(WEATHER + "What is the weather like in New York City right now?", "",
                    "The current weather in New York City is weather('current weather in New York City').")
    c = single_turn(WEATHER + "What is the weather like in New Orleans right now?", "",
                    "The current weather in New Orleans is weather('current weather in New Orleans').")
    a.origin, b.origin, c.origin = "a", "b", "c"
    assert kept([a, b, c]) == ["a", "c"]


# -- the final answer of a dialogue --------------------------------------------------------------------

HISTORY = [("Can you help me plan a three day trip to Kyoto in autumn?",
            "Of course. Day one: Fushimi Inari early in the morning, then Tofuku-ji for the maple leaves and an "
            "evening walk through Gion. Day two: Arashiyama, the bamboo grove, Tenryu-ji and a boat on the Hozu "
            "river. Day three: Kinkaku-ji, Ryoan-ji and the Nishiki market for lunch before you leave."),
           ("Which of these places gets the most crowded?",
            "Fushimi Inari and the Arashiyama bamboo grove are the busiest; going before eight in the morning "
            "avoids most tour groups, and weekdays are calmer than weekends.")]


def dialogue(final_answer: str, origin: str) -> Conversation:
    messages = [m for q, a in HISTORY for m in (Message("user", q), Message("assistant", a))]
    messages += [Message("user", "Where should I stay?"), Message("assistant", final_answer)]
    return Conversation(messages, origin=origin)


def test_a_shared_history_is_not_a_duplicate_answer():
    a = dialogue("Stay near Kyoto Station: every train and most buses start there.", "a")
    b = dialogue("Stay in Gion: the old streets are beautiful at night and close to the river.", "b")
    assert kept([a, b]) == ["a", "b"]


def test_a_final_answer_with_a_small_edit_still_merges():
    a = dialogue("Stay near Kyoto Station: every train and most buses start there.", "a")
    b = dialogue("Stay near Kyoto Station, because every train and most buses start there.", "b")
    assert kept([a, b]) == ["a"]


def test_focused_finds_every_focus_that_is_not_the_whole_text():
    """focused looks at a text only where a focus can differ from it; what it finds is focus's answer."""
    rng = random.Random(5)
    words = ["the reef", "coral", "polyps build it", "Question: who?", dedup_text.MESSAGE_BREAK, "\n", " ", "x" * 30,
             "\n" + " ".join(["reef"] * 45) + "\n"]  # a passage
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(0, 60))) for _ in range(400)]
    for passages in (True, False):
        want = {k: f for k, t in enumerate(texts) if (f := dedup_text.focus(t, passages)) != t}
        assert dict(dedup_text.focused(texts, passages)) == want
        assert want  # the texts exercise both kinds of focus


# -- questions on a shared passage ----------------------------------------------------------------------

PASSAGES = [
    ("The Great Barrier Reef, off the coast of Queensland in Australia, is the world's largest coral reef "
     "system. It is composed of nearly three thousand individual reefs and about nine hundred islands "
     "stretching over two thousand three hundred kilometres. The reef can be seen from outer space and is "
     "built by billions of tiny organisms known as coral polyps. It supports a wide diversity of life and was "
     "selected as a World Heritage Site in 1981. Climate change, pollution and outbreaks of the crown-of-thorns "
     "starfish are the main threats to its health, and mass bleaching events have become more frequent.",
     [("Which organisms build the reef?", "Coral polyps."),
      ("In which Australian state does the reef lie?", "Queensland."),
      ("What are the main threats to the reef?", "Climate change, pollution and crown-of-thorns starfish."),
      ("When was the reef made a World Heritage Site?", "In 1981."),
      ("Can the reef be seen from space?", "Yes, it can be seen from outer space."),
      ("What kind of events have become more frequent?", "Mass bleaching events."),
      ("Is the reef the largest coral reef system in the world?", "Yes, it is the world's largest."),
      ("Which starfish threatens the reef?", "The crown-of-thorns starfish.")]),
    ("Marie Curie was a Polish and naturalised French physicist and chemist who conducted pioneering research "
     "on radioactivity. She was the first woman to win a Nobel Prize, the first person to win one twice, and "
     "the only person to win a Nobel Prize in two scientific fields. With her husband Pierre she discovered the "
     "elements polonium and radium, and she developed techniques for isolating radioactive isotopes. During the "
     "First World War she set up mobile radiography units to treat wounded soldiers. She died in 1934 of "
     "aplastic anaemia, most likely caused by her long exposure to radiation.",
     [("What did Marie Curie research?", "Radioactivity."),
      ("Which elements did she discover?", "Polonium and radium."),
      ("Who did she discover them with?", "Her husband Pierre."),
      ("What did she set up during the First World War?", "Mobile radiography units."),
      ("What did she die of?", "Aplastic anaemia, most likely caused by exposure to radiation."),
      ("Was she the first woman to win a Nobel Prize?", "Yes."),
      ("In how many scientific fields did she win a Nobel Prize?", "Two: physics and chemistry."),
      ("Which country was she born in?", "Poland.")]),
]


def reading_rows(seed: int = 0) -> tuple[list[dict], set[int]]:
    """Alpaca rows: every question on its passage (half with the question in the instruction and the
    passage as input, half with both in the input), some questions answered twice differently, and copies
    with one small edit. Returns the rows and the positions of the copies (what dedup may remove)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for passage, questions in PASSAGES:
        for k, (question, answer) in enumerate(questions):
            if k % 2:
                rows.append({"instruction": question, "input": passage, "output": answer})
            else:
                rows.append({"instruction": "Read the passage and answer the question.",
                             "input": f"{passage}\nQuestion: {question}", "output": answer})
        # the same question answered otherwise: another record
        rows.append({**rows[-1], "output": "I am not sure; the passage does not say."})
    copies = set()
    originals = list(rows)
    for row in rng.sample(originals, 8):
        copy = dict(row)
        edit = rng.choice(["typo", "punctuation", "spacing"])
        if edit == "typo":
            copy["input"] = copy["input"].replace("organisms", "orgainsms").replace("pioneering", "pioneeirng")
        elif edit == "punctuation":
            copy["output"] = copy["output"].rstrip(".") + "!"
        else:
            copy["instruction"] = copy["instruction"].replace(" ", "  ", 1) + " "
        copies.add(len(rows))
        rows.append(copy)
    return rows, copies


def test_reading_comprehension_questions_on_one_passage_stay_apart(tmp_path):
    rows, copies = reading_rows()
    records = [single_turn(r["instruction"], r["input"], r["output"], origin=str(k)) for k, r in enumerate(rows)]
    survivors = {int(o) for o in kept(records)}
    assert survivors == set(range(len(rows))) - copies  # no question or answer lost, every copy found


def test_reading_comprehension_paths_agree(tmp_path):
    rows, copies = reading_rows(seed=3)
    src = tmp_path / "rc.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    config = DedupConfig()
    log = RunLog("dedup")
    in_memory = dedup_records(list(read_records([str(src)], log, ReadOptions())), config, log)
    out = tmp_path / "out.jsonl"
    with RowWriter(str(out)) as writer:
        dedup_files([str(src)], writer, config, RunLog("dedup"), runner=LocalRunner(1), announce=lambda _m: None)
    streamed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(c.messages[0].content, c.messages[1].content) for c in in_memory] == \
        [("\n".join(x for x in (r["instruction"], r["input"]) if x), r["output"]) for r in streamed]
    assert len(streamed) == len(rows) - len(copies)


# -- numbers written as words ---------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [
    ("Give three tips for staying healthy.", "Give 3 tips for staying healthy."),
    ("List twenty-one words that rhyme with cat.", "List 21 words that rhyme with cat."),
    ("给我三个保持健康的建议。", "给我3个保持健康的建议。"),
    ("第十五步是什么？", "第15步是什么？"),
])
def test_number_words_and_digits_are_the_same_number(a, b):
    assert decide([a, b]) == [-1, 0]


def test_different_numbers_in_words_are_different_tasks():
    assert decide(["Give three tips for staying healthy in winter.",
                   "Give 4 tips for staying healthy in winter."]) == [-1, -1]
    assert decide(["Give three tips for staying healthy in winter.",
                   "Give four tips for staying healthy in winter."]) == [-1, -1]
    assert dedup_text.identifiers_batch(["which one is it, 一起"]) == [""]  # not numbers here


def test_the_sketch_keeps_its_size():
    cfg = DedupConfig()
    sk = sketch([("a question about the reef", "an answer")] * 3, cfg)
    assert sk.sigs.shape == (3, 2, cfg.num_perm) and sk.sigs.dtype.itemsize == 2


# -- real data, read by hand ------------------------------------------------------------------------------

def test_real_branches_with_a_different_final_answer_stay(shared):
    """OpenAssistant zh branches sharing one history (real/judged_by_reading.tsv): the final answers of
    :5081 and :5070, :4175 and :4164 differ in substance, so neither pair merges; exact repeats still do."""
    path = shared("real", "chatglm_efficient_tuning_oaast_sft_zh_history.json")
    records = list(read_records([str(path)], RunLog("read"), ReadOptions(announce=lambda _m: None)))
    line = {c.origin.rsplit(":", 1)[1]: c for c in records}
    for a, b in (("5070", "5081"), ("4164", "4175")):
        assert kept([line[a], line[b]]) == [line[a].origin, line[b].origin]
    # the history is shared: only the final answer tells them apart
    assert line["5070"].messages[:-1] == line["5081"].messages[:-1]
    assert len(dedup_records(records, DedupConfig(), RunLog("dedup"))) < len(records)  # its exact repeats go


def test_frequent_words_are_wordfreqs():
    assert dedup_text.FREQUENT_WORDS == dedup_text.frequent_words_from_wordfreq()
