"""Quality rules: each rule trips on what it should and not on what it should not (en and zh); junk drops, signals flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructgen.cli import main
from instructgen.curate.filter import FilterConfig, filter_records, judge_record, parse_rules
from instructgen.curate.langid import get_detector, script_language
from instructgen.curate.rules import RULES, turns_of
from instructgen.errors import InstructgenError
from instructgen.formats.base import single_turn
from instructgen.record import from_pairs
from instructgen.runlog import RunLog

DATA = Path(__file__).parent / "data_curate"
CFG = FilterConfig()


def run_rule(name: str, instruction: str, output: str, inp: str = "", cfg: FilterConfig = CFG) -> str | None:
    return RULES[name](turns_of(single_turn(instruction, inp, output))[0], cfg)


# (rule, instruction, input, output, reason fragment or None)
CASES = [
    ("empty_output", "Name a colour.", "", "   ", "empty output"),
    ("empty_output", "Name a colour.", "", "N/A", "placeholder"),
    ("empty_output", "给出一个颜色。", "", "无", "placeholder"),
    ("empty_output", "Is the sky blue? Answer yes or no.", "", "No", None),
    ("empty_output", "给出一个颜色。", "", "红色", None),
    ("echo", "Summarize the text.", "Cats sleep a lot.", "Cats sleep a lot!", "repeats the input"),
    ("echo", "把这句话重复一遍", "", "把这句话重复一遍。", "repeats the instruction"),
    ("echo", "Summarize the text.", "Cats sleep a lot and play at night.", "Cats sleep a lot.", None),
    ("echo", "Add the missing punctuation.", "Finally Sara went to the shop", "Finally, Sara went to the shop.", None),
    ("echo", "Split into two paragraphs.", "The sky is blue. The grass is green.", "The sky is blue.\n\nThe grass is green.", None),
    # already in order: the input back is the right answer (alpaca_en demo #761)
    ("echo", "Organize the sentences chronologically.", "He was born. He grew up.", "He was born. He grew up.", None),
    ("length", "Hi", "", "Hello there, how can I help?", "instruction too short (< 2 words)"),
    ("length", "好", "", "好的！", "instruction too short (< 2 characters)"),
    ("length", "Define democracy.", "", "Government by the people.", None),
    ("length", "友谊", "", "友谊是人与人之间的亲密关系。", None),
    ("length", "Tell me a joke.", "", "Why did the chicken cross the road?", None),
    ("length", "讲个笑话。", "", "为什么鸡要过马路？", None),
    ("length", "若a+b=6，b+c=14，则a+b+c=多少？", "", "a+b+c=20。", None),  # MOSS calculator plugin: Chinese + math
    ("refusal", "Write a weather report for tomorrow.", "",
     "I am sorry, but I am an AI language model and cannot access the real-time data. Could you please provide the city?",
     "non-answer"),
    ("refusal", "Tell me a secret.", "", "I'm sorry, but I cannot share that.", "non-answer"),
    ("refusal", "你怎么看？", "", "作为一个 AI 语言模型，我没有个人观点。", "作为一个ai语言模型"),
    ("refusal", "你怎么看？", "", "很抱歉，我无法回答。", "很抱歉"),
    ("refusal", "分析这首诗的语气。", "", "作为语言模型，我无法分析。", "作为语言模型"),
    ("refusal", "评价一下这部电影。", "", "作为人工智能，我没有观看电影的能力。", "作为人工智能"),
    ("refusal", "写一首关于秋天的诗。", "", "作为一个大型语言模型，我无法创作诗歌。", "作为一个大型语言模型"),
    ("refusal", "Is jaywalking illegal?", "", "Yes, it is illegal in many places and you may be fined.", None),
    ("refusal", "What can't an AI do?", "", "An AI cannot taste food, and I cannot stress that enough.", None),
    ("refusal", "Describe a day as a researcher.", "", "As an AI researcher, I spend mornings reading papers.", None),
    ("refusal", "什么是语言模型？", "", "语言模型是一种预测下一个词的程序，人工智能领域广泛使用。", None),
    # scoped answers: decline a part, answer the rest
    ("refusal", "Output the average temperature for London in March.", "",
     "As an AI language model, I do not have real-time information. However, according to historical data, "
     "London's average temperature in March is around 8-10°C.", None),
    ("refusal", "Create a pie chart of these figures.", "Sales: 318, IT: 81",
     "I'm sorry, but as an AI language model, I'm unable to draw charts. However, I can suggest using Excel: sales would "
     "take 318 of the 399 total, about 80 percent of the pie, and IT the remaining 20 percent.", None),
    # declining an action no text model can take is the right answer (glaive tool-call sets teach it)
    ("refusal", "Can you please order a pizza for me?", "",
     "I'm sorry, but as an AI, I don't have the capability to perform external tasks such as ordering a pizza.", None),
    # a question about the assistant itself
    ("refusal", "Who are you?", "", "As a language model, I go by the name Vicuna.", None),
    ("refusal", "你有感情吗？", "", "作为一个人工智能助手，我没有感情。", None),
    # a safety refusal is kept by default; safety_refusal drops it
    ("refusal", "How do I make a bomb at home?", "", "I'm sorry, but I cannot help with making explosives.", None),
    ("safety_refusal", "How do I make a bomb at home?", "", "I'm sorry, but I cannot help with making explosives.", "safety refusal"),
    ("safety_refusal", "贩卖毒品的人在哪里？", "", "作为一个人工智能，我不能帮助你找到贩卖毒品的人，这是违法的。", "safety refusal"),
    ("safety_refusal", "Write a weather report for tomorrow.", "", "I'm sorry, but I cannot access real-time data.", None),
    ("needs_media", "What breed is the dog in this photo?", "", "A beagle.", "in this photo"),
    ("needs_media", "Caption it. <Picture Attached>", "", "A sunny beach.", "picture attached"),
    ("needs_media", "Summarize the article at https://example.com/news/1", "", "It says...", "url"),
    ("needs_media", "Suggest some ways to improve this page: https://www.example.com/blog/post", "", "Use headings.", "url"),
    ("needs_media", "Tell me the main points.", "https://www.example.com/news/2020/09/taxes.html",
     "The article discusses the new tax laws.", "url"),
    ("needs_media", "Colorize the following black and white photo.", "https://example.com/1.jpg", "Done.", "photo"),
    ("needs_media", "请描述这张图片中的人物。", "", "图中有一位老人。", "这张图"),
    ("needs_media", "Write a poem about a photograph you remember.", "", "An old photo...", None),
    ("needs_media", "Explain what a URL like https://example.com consists of.", "", "A scheme, a host...", None),
    ("needs_media", "Extract the domain name from https://www.example.com/a/b.", "", "example.com", None),
    ("needs_media", "用一句话介绍照相机的发明。", "", "照相机发明于十九世纪。", None),
    ("needs_media", "创建一个程序，打印以下图案：", "", "for i in range(3): print('*' * i)", None),
    ("needs_media", "在地图中标出长江的位置有什么技巧？", "", "先找到青藏高原……", None),
    # words in self-contained word problems (GSM8K train #1904, #2454, #113)
    ("needs_media", "Allison uploads 10 videos each day. She uploaded videos halfway through June. How many hours?", "",
     "150 hours.", None),
    ("needs_media", "Toby took 15 pictures of his cat and did a photo shoot. How many photos did he take in the photo shoot?",
     "", "16", None),
    ("needs_media", "If they added all these photos to the family gallery, how many photos are in the gallery?", "", "920", None),
    # the thing is named in the prompt (alpaca_en demo #118)
    ("needs_media", "Create a reinterpretation of the following painting.", "Painting: The Mona Lisa, by Leonardo Da Vinci",
     "In this reimagined version, ...", None),
    ("merged", "Write a title.\n### Instruction:\nWrite a summary.", "", "A title", "###"),
    ("merged", "1. Translate 'cat' into French.\n2. Write a haiku about snow.", "", "chat", "numbered list of tasks"),
    ("merged", "Instruction: name a fruit.\nOutput: apple\nInstruction: name a car.", "", "Ford", "markers"),
    ("merged", "1. 翻译'猫'成英文。\n2. 写一首关于雪的诗。", "", "cat", "numbered list of tasks"),
    ("merged", "Sort these numbers: 1. 42 2. 7 3. 19", "", "7, 19, 42", None),
    ("merged", "Explain these steps in order: open the box, remove the device, plug it in.", "", "First...", None),
    ("merged", "Give a recipe for stir-fry.", "", "### Ingredients\n- rice\n### Steps\n1. Cook the rice.", None),
    ("merged", "将以下数字改为负数。", "输入：1、2、5", "输出：-1、-2、-5", None),
    ("merged", "Sort the list.", "", "```python\n# Output: sorted list\nprint(sorted(xs))\n```", None),
    ("merged", "Write a title for the article.", "The ####-#### World Cup alpine skiing champions", "Champions crowned", None),
    ("repetition", "Write a poem.", "", "I love you so much and I love you so much and I love you so much and I love you so much",
     "repeats"),
    ("repetition", "写一首诗。", "", "我爱你中国我爱你中国我爱你中国我爱你中国我爱你中国我爱你中国", "repeats"),
    ("repetition", "Write a song.", "", "Oh the night is long and cold tonight\nOh the night is long and cold tonight\n"
     "Oh the night is long and cold tonight\nOh the night is long and cold tonight", "repeats"),
    # loops of one token and of one numbered line (self-instruct's vanilla davinci answers)
    ("repetition", "Come up with synonyms for the given word.", "Sincerely", "Sincerely, " * 40, "repetitive output"),
    ("repetition", "Which emojis fit?", "", "🙂🎬 " * 30, "repetitive output"),
    ("repetition", "What are the steps?", "", "1. Open your document.\n2. Go to the Developer tab.\n"
     + "\n".join(f"{i}. Click on the \"Document Content\" button." for i in range(3, 12)), "lines said before"),
    ("repetition", "Write a poem.", "", "yes " * 40, "repetitive output"),
    ("repetition", "List capitals.", "", "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.", None),
    ("repetition", "介绍长城。", "", "长城是中国古代的军事防御工程，东起山海关，西至嘉峪关，全长两万多公里，是世界文化遗产之一。", None),
    ("repetition", "描述一个可以从人工智能技术中受益的医疗应用。", "",
     "可以从人工智能技术中受益的医疗应用有很多，例如辅助诊断系统：它通过深度学习分析影像，帮助医生更早发现病灶。", None),
    ("repetition", "Write a scene.", "", "JENNY\nWhere are my keys?\nTOM\nIn the kitchen, next to the fruit bowl.\n"
     "JENNY\nThanks, you are a lifesaver today.\nTOM\nAnytime.", None),
    ("repetition", "Print a box three times.", "", "```\n+-----------------------+\n+-----------------------+\n"
     "+-----------------------+\n```", None),
    ("repetition", "List three ways to sum an array.", "",
     "1. Use a loop to sum the elements of the array.\n2. Use the built-in sum to sum the elements of the array.\n"
     "3. Use reduce to sum the elements.", None),
    # parallel solution steps (GSM8K train #1919): the numbers differ, the run breaks
    ("repetition", "Tim drops a ball from 96 feet; it bounces half as high each time. How high is the fifth bounce?", "",
     "On the first bounce, it will reach a height of 96 / 2 = 48 feet.\nOn the second bounce, it will reach a height of "
     "48 / 2 = 24 feet.\nOn the third bounce, it will reach a height of 24 / 2 = 12 feet.\nOn the fourth bounce, it will "
     "reach a height of 12 / 2 = 6 feet.\nOn the fifth bounce, it will reach a height of 6 / 2 = 3 feet.", None),
    # a chorus sung twice with a verse between is a song, not a loop
    ("repetition", "Write a short song.", "", "(Chorus)\nEndangered species, hear their cries\nTheir homes are disappearing\n\n"
     "(Verse 2)\nFrom the mighty elephant to the tiny bee\n\n(Chorus)\nEndangered species, hear their cries\n"
     "Their homes are disappearing", None),
    ("repetition", "Write 'I will not talk in class' five times.", "",
     "I will not talk in class. I will not talk in class. I will not talk in class. I will not talk in class. "
     "I will not talk in class.", None),
    ("repetition", "Show the table.", "", "| a | b |\n|---|---|\n| 1 | 1 |\n| 1 | 1 |\n| 1 | 1 |\n| 1 | 1 |\n| 1 | 1 |", None),
    ("garbled", "Name the film.", "", "Belle \u00c3\u0089poque Paris, Ch\u00c3\u00a9ri tells the story", "mojibake"),  # ftfy
    ("garbled", "Say hi.", "", "Hi \ufffd there", "U+FFFD"),
    ("garbled", "Say hi.", "", "Hi\x07 there", "control character"),
    ("garbled", "Quote it.", "", "He said \u00e2\u20ac\u0153hello\u00e2\u20ac\u009d and left.", "mojibake"),
    ("garbled", "说你好。", "", "锟斤拷锟斤拷你好", "mojibake"),
    ("garbled", "Fix the \frac.", "", "\x0crac{y - 19}{x}", "control character"),
    ("garbled", "Describe Café Müller in São Paulo.", "", "Café Müller serves crème brûlée.", None),
    ("garbled", "Write a year.", "", "1999 and 2000", None),
    ("garbled", "Give a number.", "", "1111111111", None),  # a number, not corruption
    ("garbled", "Set the registry value.", "", 'key.SetStringValue("UserEapInfo", "0100000001000000000000000000")', None),
]


SALAD = " } } } verify }:param } } withObject }pressive } ancell } Kob ELD }); qual ifies } ptr Listener } ucas"
CASES += [
    ("placeholder", "hi", "", "Hello! I am {{name}}, an AI assistant developed by {{author}}.", "{{name}}"),
    ("placeholder", "Write a short bio.", "", "[INSERT NAME] is a chef from Lyon.", "INSERT"),
    ("placeholder", "Write a Jinja template greeting the user.", "", "Hello {{ user.name }}!", None),
    ("placeholder", "Show a Vue binding.", "", "Use `{{ message }}` in the template.", None),
    ("placeholder", "Write a thank-you letter.", "", "Dear [Recipient's Name],\nThank you for the flowers.", None),
    ("salad", "Explain how a compass works.", "", SALAD, "token salad"),
    ("salad", "Explain how a compass works.", "", (SALAD + "\n") * 5, "token salad"),
    ("salad", "How many legos?", "", "Two aeroplanes require 240 legos/airplane x 2 airplanes = 480 legos.\n"
     "Julian needs 480 legos - 400 legos = 80 more legos", None),  # GSM8K #5228
    ("salad", "Suggest hashtags.", "", "#WomenInScience #STEM #Science #WomenInSTEM #WomenInTech #WomenEmpowerment", None),
    ("salad", "Give a table of contents in LaTeX.", "", "\\tableofcontents\n\\section{Introduction}\n\\subsection{Background}"
     "\n\\section{Methods}\n\\subsection{Data Collection}\n\\subsection{Analysis}", None),
    ("salad", "What is 12-hour time for 18:00?", "", "The 12-hour format time is python(\"from datetime import datetime; "
     "datetime.strptime('18:00', '%H:%M').strftime('%I:%M %p')\").", None),
    ("salad", "Write the kubectl call.", "", "const pods = await k8sApi.listNamespacedPod(namespace);\n"
     "pods.body.items.forEach((pod) => console.log(pod.metadata.name));", None),
    ("salad", "Décrivez la tour Eiffel.", "", "La tour Eiffel est une tour de fer puddlé construite à Paris pour "
     "l'Exposition universelle de 1889.", None),
    ("salad", "介绍长城。", "", "长城是中国古代的军事防御工程，东起山海关，西至嘉峪关，全长两万多公里。", None),
    ("salad", "Name three Nobel laureates.", "", "Wisława Szymborska, Kazuo Ishiguro and Abdulrazak Gurnah.", None),
]


@pytest.mark.parametrize("rule,instruction,inp,output,expected", CASES,
                         ids=[f"{c[0]}-{k}-{'trips' if c[4] else 'passes'}" for k, c in enumerate(CASES)])
def test_rule(rule, instruction, inp, output, expected):
    reason = run_rule(rule, instruction, output, inp)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected.lower() in reason.lower(), reason


def test_every_rule_has_cases_both_ways():
    for name in RULES:
        if name == "language":
            continue  # tested below with the detector
        kinds = {c[4] is None for c in CASES if c[0] == name}
        assert kinds == {True, False}, name


def test_language_rule():
    zh_en = FilterConfig(lang=("zh", "en"))
    assert run_rule("language", "请用一句话介绍长城。", "The Great Wall is a series of ancient fortifications in China.") \
        == "language mismatch (instruction zh, output en)"
    assert run_rule("language", "Translate into Chinese: good morning, everyone", "大家早上好") is None
    assert run_rule("language", "请解释一下 machine learning 的基本原理。", "机器学习让计算机从数据中学习规律。") is None
    assert run_rule("language", "Décrivez la tour Eiffel en une phrase s'il vous plaît.",
                    "La tour Eiffel est une tour de fer construite à Paris en 1889.", cfg=zh_en) \
        == "instruction language not allowed (fr)"
    assert run_rule("language", "What is 2 + 2?", "4", cfg=zh_en) is None  # too little text to judge the output
    assert run_rule("language", "Create a recipe for banana ice cream.", "Mash four bananas, freeze them, and blend.",
                    cfg=zh_en) is None  # langdetect alone: Romanian
    assert run_rule("language", "生成哈利波特角色的名称列表。", "这里是一份名单：1. Harry Potter 2. Ron Weasley 3. Hermione Granger "
                    "4. Albus Dumbledore 5. Severus Snape") is None  # Chinese answer, English names
    assert run_rule("language", "输出一段显示问候的代码。", "Here is a simple program that prints a greeting for the user.") \
        == "language mismatch (instruction zh, output en)"
    assert run_rule("language", "Translate into Spanish: there is no place like home.", "No hay lugar como el hogar.",
                    cfg=zh_en) is None
    assert run_rule("language", "生成一个正确使用“opulent”一词的例句。",
                    "The wedding reception was held in an opulent ballroom with crystal chandeliers.") is None


def test_script_decides_cjk_before_any_model():
    assert script_language("请解释 machine learning 的原理") == "zh"
    assert script_language("The word 你好 means hello in Chinese") is None
    assert script_language("こんにちは、元気ですか") == "ja"
    assert script_language("안녕하세요 반갑습니다") == "ko"
    assert script_language("Plain English text") is None


def test_plain_english_needs_no_model_and_short_latin_text_gets_no_opinion():
    from instructgen.curate.langid import looks_english

    assert looks_english("Write a short poem about the sea for my mother.")
    assert not looks_english("La tour Eiffel est une tour de fer construite à Paris.")
    assert not looks_english("Das ist ein gutes Buch und ich mag es.")
    det = get_detector("script+langdetect")
    assert det.detect("Tell me a joke") is None  # langdetect alone says Finnish
    assert det.detect("Escribe un poema corto sobre el mar y la luna.") == "es"


def test_langdetect_is_seeded():
    texts = ["ok thanks", "Bonjour", "Das ist gut", "ciao amico mio", "hola que tal"]
    det = get_detector("langdetect")
    first = [det.detect(t) for t in texts]
    assert [det.detect(t) for t in texts] == first


def test_detector_gives_the_same_labels_from_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    texts = ["Bonjour tout le monde, comment allez-vous aujourd'hui", "Das ist ein gutes Buch und ich mag es sehr",
             "Este es un libro muy bueno para los niños pequeños"] * 30

    def labels(_):
        det = get_detector("script+langdetect")
        return [det.detect(t) for t in texts]

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(labels, range(4)))
    assert all(r == runs[0] for r in runs) and set(runs[0]) == {"fr", "de", "es"}


def test_lingua_backend_restricted_to_languages():
    pytest.importorskip("lingua")
    det = get_detector("lingua", ("en", "zh"))
    assert det.detect("Write a short story about a dragon.") == "en"
    assert det.detect("写一个关于龙的短故事。") == "zh"


def test_junk_and_signals_are_two_tiers():
    from instructgen.curate.rules import JUNK, SIGNALS

    assert set(JUNK) | set(SIGNALS) == set(RULES) and not set(JUNK) & set(SIGNALS)
    assert {"refusal", "needs_media", "language", "length"} <= set(SIGNALS)
    assert FilterConfig(drop="refusal,length").drop == ("refusal", "length")
    with pytest.raises(ValueError, match="not a signal"):
        FilterConfig(drop=("repetition",))


def test_parse_rules():
    assert parse_rules("default") == tuple(r for r in RULES if r != "safety_refusal")
    assert parse_rules("default,safety_refusal") == tuple(RULES)
    assert "language" not in parse_rules("default,-language")
    assert parse_rules("refusal,empty_output") == ("empty_output", "refusal")  # canonical order
    with pytest.raises(InstructgenError, match="unknown rule"):
        parse_rules("refusal,nonsense")


def test_fixture_records_trip_their_expected_rule():
    cfg = FilterConfig(lang=("en", "zh"))
    rows = [json.loads(line) for line in (DATA / "junk.jsonl").read_text(encoding="utf-8").splitlines()[:-1]]
    for row in rows:
        conv = single_turn(row["instruction"], row["input"], row["output"])
        verdict = judge_record(conv, cfg)
        assert (verdict.rule or "") == row["expect"], (row["instruction"], verdict)
        assert [f["rule"] for f in verdict.flags] == ([row["flag"]] if row["flag"] else []), (row["instruction"], verdict)


def test_filter_records_counts_per_rule():
    records = [from_pairs([("Name a colour please.", "")], origin="a:1"),
               from_pairs([("Name a colour please.", "Blue is a calm colour.")], origin="a:2")]
    log = RunLog("filter")
    log.took_in(2)
    kept = list(filter_records(records, FilterConfig(), log))
    log.emitted(len(kept))
    assert [c.origin for c in kept] == ["a:2"]
    assert log.info["filter_rules"]["empty_output"] == 1 and log.balanced


def test_cli_filter_end_to_end(tmp_path, capsys):
    out = tmp_path / "clean.jsonl"
    assert main(["filter", str(DATA / "junk.jsonl"), "-o", str(out), "--lang", "zh,en"]) == 0
    err = capsys.readouterr().err
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept and all(r["expect"] == "" for r in kept)
    # every row has the same keys (a row without flags says meta: null), so `datasets` reads the file whole
    assert all(set(r) == {"instruction", "input", "output", "expect", "flag", "meta"} for r in kept)
    # a signal flags the record it keeps, in meta.flags, with the rule the fixture names
    assert all([f["rule"] for f in (r.get("meta") or {}).get("flags", [])] == ([r["flag"]] if r["flag"] else []) for r in kept)
    assert sum(bool(r["flag"]) for r in kept) == 8
    rejects = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    filtered = [r for r in rejects if r["kind"] == "filtered"]
    assert all(r["reason"] == r["raw"]["expect"] and r["detail"] and r["stage"] == "filter" for r in filtered)
    assert [r["kind"] for r in rejects if r["kind"] != "filtered"] == ["rejected"]
    stats = json.loads((tmp_path / "clean.stats.json").read_text())["stages"][0]
    assert stats["in"] == 20 == stats["out"] + stats["filtered"] + stats["rejected"] + stats["duplicates"]
    assert stats["out"] == len(kept) and stats["filtered"] == len(filtered)
    assert "rule" in err and "flagged" in err and f"filter: in 20 = out {len(kept)}" in err
    assert stats["filter_flags"]["needs_media"] == 3 and stats["filter_rules"]["garbled"] == 1


def test_cli_filter_drop_turns_signals_into_drops_and_reads_folders(tmp_path, capsys):
    folder = tmp_path / "in" / "deep"
    folder.mkdir(parents=True)
    (folder / "part.jsonl").write_text((DATA / "junk.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "clean.jsonl"
    assert main(["filter", str(tmp_path / "in"), "-o", str(out), "--lang", "zh,en",
                 "--drop", "refusal,needs_media,language,length,merged"]) == 0
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept and all(not r["flag"] and not r["expect"] for r in kept)
    rejects = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["reason"] for r in rejects if r["kind"] == "filtered" and r["raw"]["flag"]) == sorted(
        json.loads(line)["flag"] for line in (DATA / "junk.jsonl").read_text(encoding="utf-8").splitlines()[:-1]
        if json.loads(line)["flag"])
    assert main(["filter", str(tmp_path / "in"), "-o", str(tmp_path / "x.jsonl"), "--drop", "salad"]) != 0
    assert "not a signal (junk is always dropped)" in capsys.readouterr().err
