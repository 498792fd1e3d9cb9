"""Pure prompt building and parsing for generation, and the per-language filters."""

from __future__ import annotations

import json

from instructgen.generate import self_instruct as si
from instructgen.generate.filters import instruction_problem
from instructgen.generate.run import load_seed_tasks


def test_numbered_text_continuing_the_examples_with_noinput_and_separators():
    text = (
        "4. Instruction: Name three rivers in Africa.\n4. Input:\n<noinput>\n4. Output:\nNile, Congo, Niger.\n\n###\n"
        "5. Instruction: Rewrite the sentence in the passive voice.\n5. Input:\nThe cat chased the mouse.\n"
        "5. Output:\nThe mouse was chased by the cat.\n###\n"
    )
    parsed = si.parse_alpaca_text(text, "stop")
    assert [(t.instruction, t.input, t.output) for t in parsed.items] == [
        ("Name three rivers in Africa.", "", "Nile, Congo, Niger."),
        ("Rewrite the sentence in the passive voice.", "The cat chased the mouse.", "The mouse was chased by the cat."),
    ]
    assert parsed.problems == []


def test_full_width_colon_chinese_labels_and_truncated_last_item_dropped():
    text = ("1. 指令：把这句话翻译成英文。\n1. 输入：\n今天天气很好。\n1. 输出：\nThe weather is nice today.\n###\n"
            "2. Instruction：列出三种水果。\n2. Input：\n<无输入>\n2. Output：\n苹果、香蕉、橙子\n###\n"
            "3. 指令：写一首关于")
    parsed = si.parse_alpaca_text(text, "length")
    assert [(t.instruction, t.input, t.output) for t in parsed.items] == [
        ("把这句话翻译成英文。", "今天天气很好。", "The weather is nice today."),
        ("列出三种水果。", "", "苹果、香蕉、橙子"),
    ]
    assert parsed.problems == [(si.TRUNCATED, "3. 指令：写一首关于")]
    # the same answer, not truncated: the last item is unparsable (no output), reported, not lost
    parsed = si.parse_alpaca_text(text, "stop")
    assert len(parsed.items) == 2 and parsed.problems[0][0].startswith("unparsable item")


def test_garbage_yields_nothing_so_the_caller_keeps_the_raw_text():
    for parse in (si.parse_alpaca_text, si.parse_alpaca_json, si.parse_instructions_json):
        parsed = parse("I'm sorry, I can't help with that.", "stop")
        assert parsed.items == [] and parsed.problems == []


def test_json_tasks_fenced_and_truncated():
    doc = {"tasks": [{"instruction": "Give a synonym for happy.", "input": "", "output": "Joyful"},
                     {"instruction": "Sum the numbers.", "input": "2, 3", "output": "5"}]}
    text = "```json\n" + json.dumps(doc) + "\n```"
    parsed = si.parse_alpaca_json(text)
    assert [(t.instruction, t.input, t.output) for t in parsed.items] == [
        ("Give a synonym for happy.", "", "Joyful"), ("Sum the numbers.", "2, 3", "5")]
    cut = json.dumps(doc)[:-30]  # cut inside the second task
    parsed = si.parse_alpaca_json(cut, "length")
    assert [t.instruction for t in parsed.items] == ["Give a synonym for happy."]
    assert parsed.problems[0][0] == si.TRUNCATED
    bad = si.parse_alpaca_json(json.dumps({"tasks": [{"instruction": 3}]}))
    assert bad.items == [] and bad.problems[0][0].startswith("unparsable item")


def test_bootstrap_instruction_lines_and_json():
    text = "Task 9: Plan a picnic menu for six people.\nTask 10: Explain recursion\nusing a short example.\nTask 11: Wri"
    parsed = si.parse_instructions_text(text, "length")
    assert parsed.items == ["Plan a picnic menu for six people.", "Explain recursion\nusing a short example."]
    assert parsed.problems == [(si.TRUNCATED, "Wri")]
    assert si.parse_instructions_text("任务9：写一首关于秋天的诗。\n任务10：解释什么是通货膨胀。").items == [
        "写一首关于秋天的诗。", "解释什么是通货膨胀。"]
    assert si.parse_instructions_json('{"instructions": ["A b c d.", "E f g h."]}').items == ["A b c d.", "E f g h."]
    salvaged = si.parse_instructions_json('{"instructions": ["First task here.", "Second ta', "length")
    assert salvaged.items == ["First task here."] and salvaged.problems[0][0] == si.TRUNCATED


def test_classification_answers():
    assert si.parse_classification("Yes") is True
    assert si.parse_classification("No, it asks for an essay.") is False
    assert si.parse_classification("是") is True and si.parse_classification("否") is False
    assert si.parse_classification('{"is_classification": true}') is True
    assert si.parse_classification("Maybe?") is None


def test_instances_input_first_output_first_and_limit():
    text = "Example 1\nInput: 2 + 2\nOutput: 4\n\nExample 2\nInput: <noinput>\nOutput: Zero"
    assert si.parse_instances_text(text).items == [("2 + 2", "4"), ("", "Zero")]
    text = "示例 1\n类别标签：正面\n输入：这家店太好吃了\n\n示例 2\n类别标签：负面\n输入：服务很差"
    assert si.parse_instances_text(text).items == [("这家店太好吃了", "正面"), ("服务很差", "负面")]
    many = "\n".join(f"Example {i}\nInput: q{i}\nOutput: a{i}" for i in range(1, 8))
    parsed = si.parse_instances_text(many, limit=5)
    assert len(parsed.items) == 5 and len(parsed.problems) == 2
    js = si.parse_instances_json('{"instances": [{"output": "Yes", "input": "Is 7 prime?"}]}')
    assert js.items == [("Is 7 prime?", "Yes")]


def test_self_instruct_clean_up():
    kept, dropped = si.clean_instances([
        ("a", "b"), ("a", "c"),  # same input, different outputs: both go
        ("x", "x"),  # input == output
        ("q", ""),  # empty output
        ("", "fine"), ("", "fine"),  # a repeat
        ("Question:", "answer"),  # cut off at a colon
        ("k", "v"),
    ])
    assert kept == [("", "fine"), ("k", "v")]
    reasons = sorted(r for _, r, _ in dropped)
    assert reasons == sorted(["same input with different outputs"] * 2 + ["input equals output", "empty output",
                              "duplicate instance", "incomplete instance (ends with a colon)"])


def test_prompts_in_both_languages_and_forms(tmp_path):
    seeds = load_seed_tasks(["data/seeds/seed_tasks_en.jsonl"])
    zh = load_seed_tasks(["data/seeds/seed_tasks_zh.jsonl"])
    assert len(seeds) >= 40 and len(zh) >= 40
    assert sum(s.is_classification for s in seeds) >= 5 and sum(s.is_classification for s in zh) >= 5
    text = si.alpaca_prompt(seeds[:3], "en", "text", 20)
    assert "20 new tasks" in text and "3. Instruction: " + seeds[2].instruction in text
    # the examples in the prompt parse back with our own parser
    examples = text[text.index("###"):]
    assert [t.instruction for t in si.parse_alpaca_text(examples).items] == [s.instruction for s in seeds[:3]]
    assert "指令：" in si.alpaca_prompt(zh[:3], "zh", "text") and '"tasks"' in si.alpaca_prompt(zh[:3], "zh", "json")
    boot = si.bootstrap_prompt([s.instruction for s in seeds[:8]], "en", "text")
    assert si.parse_instructions_text(boot[boot.index("Task 1:"):]).items == [s.instruction for s in seeds[:8]]
    clf = si.classify_prompt("Is this email spam?", seeds[:4], "zh", "text")
    assert clf.rstrip().endswith("是否分类任务？")
    inst = si.instances_prompt("Classify the mood.", [s for s in seeds if s.is_classification][:2], True, "en", "text")
    assert "Class label: " in inst and inst.rstrip().endswith("Task: Classify the mood.")


def test_seed_files_in_other_formats_are_read_through_convert(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    path.write_text(json.dumps({"instruction": "Add the numbers.", "input": "1 2", "output": "3"}) + "\n")
    [seed] = load_seed_tasks([str(path)])
    assert (seed.instruction, seed.instances) == ("Add the numbers.", [("1 2", "3")])


def test_filters_per_language():
    assert instruction_problem("Summarize the text below.", "en") is None
    assert instruction_problem("Summarize this.", "en").startswith("too short")
    assert instruction_problem(" ".join(["word"] * 151), "en").startswith("too long")
    assert instruction_problem("Draw a map of your town.", "en") == "blacklisted: draw"
    assert instruction_problem("Describe the plot of Hamlet briefly.", "en") == "blacklisted: plot"
    assert instruction_problem("Describe the plotting techniques of novels.", "en") is None  # whole words only
    assert instruction_problem("Write a program that sorts numbers.", "en") == "asks to write a program"
    assert instruction_problem("“Quote” this sentence for me.", "en").startswith("starts with")
    assert instruction_problem("请介绍一下北京的历史。", "zh") is None
    assert instruction_problem("写诗", "zh").startswith("too short")
    assert instruction_problem("请描述这张图片里的内容。", "zh") == "blacklisted: 图片"
    assert instruction_problem("你是ChatGPT吗？请回答这个问题。", "zh") == "blacklisted: GPT"
    assert instruction_problem("Please describe Beijing history.", "zh") == "not Chinese"
