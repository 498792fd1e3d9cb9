"""Rules a generated instruction or instance must pass, per language. Each returns a reason or None.

English (Self-Instruct/Alpaca): 3 < words <= 150; a word blacklist of things a
text-only model cannot do; not starting with punctuation or a non-ASCII
character; not "Write a program" tasks. Chinese (BELLE): lengths in
characters, a substring blacklist (图片, 文件, 链接, GPT self-references, ...).
"""

from __future__ import annotations

import re

EN_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw", "plot",
    "go to", "video", "audio", "music", "flowchart", "diagram",
)
ZH_BLACKLIST = (
    "图片", "图像", "照片", "画图", "绘制", "图表", "流程图", "示意图", "视频", "音频", "音乐", "文件", "附件",
    "链接", "网址", "网站", "http", "www.", "GPT", "ChatGPT", "OpenAI", "语言模型", "人工智能助手",
)
_EN_BLACKLIST_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in EN_BLACKLIST) + r")\b", re.I)
EN_WORDS = (3, 150)  # exclusive, inclusive
ZH_CHARS = (4, 300)  # exclusive, inclusive: counted without whitespace


def instruction_problem(instruction: str, lang: str) -> str | None:
    text = instruction.strip()
    if not text:
        return "empty instruction"
    if lang == "zh":
        n = len(re.sub(r"\s", "", text))
        if n <= ZH_CHARS[0]:
            return f"too short (<= {ZH_CHARS[0]} characters)"
        if n > ZH_CHARS[1]:
            return f"too long (> {ZH_CHARS[1]} characters)"
        low = text.lower()
        for word in ZH_BLACKLIST:
            if word.lower() in low:
                return f"blacklisted: {word}"
        if not re.search(r"[\u4e00-\u9fff]", text):
            return "not Chinese"
        return None
    n = len(text.split())
    if n <= EN_WORDS[0]:
        return f"too short (<= {EN_WORDS[0]} words)"
    if n > EN_WORDS[1]:
        return f"too long (> {EN_WORDS[1]} words)"
    m = _EN_BLACKLIST_RE.search(text)
    if m:
        return f"blacklisted: {m.group(1).lower()}"
    if text.lower().startswith("write a program"):
        return "asks to write a program"
    if not text[0].isascii() or not text[0].isalnum():
        return "starts with punctuation or a non-English character"
    return None


def output_problem(output: str) -> str | None:
    return "empty output" if not output.strip() else None
