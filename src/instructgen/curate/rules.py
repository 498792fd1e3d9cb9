"""Named quality rules for instruction data. Each returns a reason (a short string) or None.

    RULES: dict[str, Rule]              name -> rule, in the order they run
    DEFAULT_RULES: tuple[str, ...]      every rule
    Rule = Callable[[View, FilterConfig], str | None]
    View.of(conv)                       the parts rules look at: instruction (first user message, less
                                        the alpaca/dolly input when the record kept it apart), input,
                                        output (assistant messages joined)

Rules and what they catch (from alpaca-cleaned, FastChat and WizardLM-unfiltered cleaning):
    empty_output      no assistant text, whitespace only, or a placeholder ("N/A", "none", "无", ...)
    echo              output equal to the instruction or the input (up to spacing, quotes and the closing
                      mark; case, inner punctuation and line breaks count: proofreading tasks fix them)
    length            instruction/output too short or too long: words for space-separated text,
                      characters for CJK text (thresholds in FilterConfig)
    refusal           refusals and AI disclaimers, matched as whole phrases ("As an AI language model",
                      "作为一个AI语言模型", ...), never as bare words such as "illegal"
    needs_media       tasks a text model cannot do: an attached image/file/video, "<Picture Attached>", a URL to visit
    merged            several instructions merged into one (### separators, repeated Instruction: markers
                      or one in the output, a numbered list of separate tasks)
    repetition        Gopher's duplicate n-gram shares (n = 5..10 words; caps doubled for short text) and
                      duplicate lines, on the output only (code blocks aside), without the 50-word minimum
    garbled           U+FFFD, control characters, mojibake (UTF-8 read as Latin-1/GBK), runs of one digit
    language          language not in FilterConfig.lang, or a question answered in another
                      language (translation tasks exempt)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..formats.base import split_instruction
from ..record import Conversation
from .langid import PLAUSIBLE, get_detector, has_letters, script_counts

if TYPE_CHECKING:
    from .filter import FilterConfig

CJK_LANGS = ("zh", "ja", "ko")


@dataclass(slots=True)
class View:
    instruction: str
    input: str
    output: str

    @classmethod
    def of(cls, conv: Conversation) -> "View":
        turns = conv.turns
        first_user = next((m.content for m in turns if m.role == "user"), "")
        instruction, inp = split_instruction(conv, first_user)  # alpaca/dolly keep their input apart
        output = "\n".join(m.content for m in turns if m.role == "assistant")
        return cls(instruction, inp, output)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip()


# -- empty / echo ---------------------------------------------------------------------------------

PLACEHOLDERS = {"n/a", "na", "none", "null", "nil", "-", "--", "...", "tbd", "todo", "no output", "no answer",
                "<noinput>", "<no input>", "<nooutput>", "<no output>", "无", "暂无", "没有", "空", "无输出", "无答案"}


def empty_output(v: View, cfg: FilterConfig) -> str | None:
    if not v.output.strip():
        return "empty output"
    if _norm(v.output).strip(" .。") in PLACEHOLDERS:
        return "placeholder output (N/A)"
    return None


def _lines(text: str) -> str:
    # case, punctuation and line breaks stay: fixing them is what proofreading/formatting tasks do
    text = "\n".join(re.sub(r"[ \t]+", " ", ln).strip() for ln in unicodedata.normalize("NFKC", text).strip().splitlines())
    return text.strip(" .!?。!?…\"'“”「」")  # only the closing mark and quotes around it are ignored


def echo(v: View, cfg: FilterConfig) -> str | None:
    out = _lines(v.output)
    if not out:
        return None
    if out == _lines(v.instruction) or (v.input and out == _lines(v.instruction + "\n" + v.input)):
        return "output repeats the instruction"
    if v.input and out == _lines(v.input):
        return "output repeats the input"
    return None


# -- length ---------------------------------------------------------------------------------------

def text_length(text: str) -> tuple[int, str]:
    """(count, unit): CJK characters for CJK text, else words."""
    han, kana, hangul, words = script_counts(text) if len(text) <= 300 else _full_counts(text)
    cjk = han + kana
    if cjk and cjk >= words:
        return cjk + words, "characters"
    return len(text.split()), "words"


def _full_counts(text: str) -> tuple[int, int, int, int]:
    counts = [0, 0, 0, 0]
    for start in range(0, len(text), 300):
        for k, c in enumerate(script_counts(text[start:start + 300])):
            counts[k] += c
    return tuple(counts)  # type: ignore[return-value]


def length(v: View, cfg: FilterConfig) -> str | None:
    for part, text, lo_w, hi_w, lo_c, hi_c in (
        ("instruction", v.instruction, cfg.min_instruction_words, cfg.max_instruction_words,
         cfg.min_instruction_chars, cfg.max_instruction_chars),
        ("output", v.output, cfg.min_output_words, cfg.max_output_words, cfg.min_output_chars, cfg.max_output_chars),
    ):
        if part == "output" and not text.strip():
            continue  # empty_output's business
        n, unit = text_length(text)
        lo, hi = (lo_c, hi_c) if unit == "characters" else (lo_w, hi_w)
        if n < lo:
            return f"{part} too short (< {lo} {unit})"
        if n > hi:
            return f"{part} too long (> {hi} {unit})"
    return None


# -- refusals ---------------------------------------------------------------------------------------

REFUSALS_EN = [
    "as an ai language model", "as an ai model", "as a language model", "as an artificial intelligence",
    "as an ai assistant", "as an ai developed by openai", "as a large language model", "i am an ai language model",
    "i'm an ai language model", "i'm just an ai", "i am just an ai", "as an ai, i", "i'm sorry, but as an ai",
    "i'm sorry, but i cannot", "i am sorry, but i cannot", "i'm sorry, but i can't", "i am sorry, but i can't",
    "i cannot fulfill", "i can't fulfill", "i cannot comply", "i can't assist with", "i cannot assist with",
    "i'm unable to provide", "i am unable to provide", "i'm not able to provide", "i am not able to provide",
    "i don't have personal opinions", "i do not have personal opinions", "i don't have personal feelings",
    "i do not have personal feelings", "i don't have the ability to", "i do not have the ability to",
    "i don't have access to real-time", "i do not have access to real-time", "my knowledge cutoff",
    "openai's content policy", "against openai's use case policy", "it is not appropriate for me to",
    "i'm not programmed to", "i am not programmed to",
]
REFUSALS_ZH = [
    "作为一个ai语言模型", "作为一个人工智能语言模型", "作为ai语言模型", "作为人工智能语言模型", "作为一个语言模型",
    "作为一个ai", "作为一个人工智能", "作为一名ai", "作为一名人工智能", "作为人工智能助手", "作为ai助手",
    "我是一个ai语言模型", "我是一个人工智能语言模型", "我只是一个ai", "我只是一个人工智能", "我只是一个语言模型",
    "很抱歉,我无法", "很抱歉,我不能", "抱歉,我无法", "抱歉,我不能", "对不起,我无法", "对不起,我不能",
    "我无法回答这个问题", "我不能回答这个问题", "我没有个人观点", "我没有个人情感", "我没有个人意见",
    "我无法提供实时", "我不具备",
]


def _phrase_regex(phrases: list[str]) -> re.Pattern:
    alts = sorted((re.escape(p).replace(r"\ ", r"\s+") for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)")


_REFUSAL_EN = _phrase_regex(REFUSALS_EN)
_REFUSAL_ZH = re.compile("|".join(re.escape(p) for p in sorted(REFUSALS_ZH, key=len, reverse=True)))


def _zh_form(text: str) -> str:
    # NFKC turns "，" into ","; spaces inside Chinese text ("作为一个 AI 语言模型") carry no meaning
    return re.sub(r"\s+", "", _norm(text))


def refusal(v: View, cfg: FilterConfig) -> str | None:
    m = _REFUSAL_EN.search(_norm(v.output))
    if m:
        return f"refusal or AI disclaimer ({m.group(0)!r})"
    m = _REFUSAL_ZH.search(_zh_form(v.output))
    if m:
        return f"refusal or AI disclaimer ({m.group(0)!r})"
    return None


# -- needs media ----------------------------------------------------------------------------------

_MEDIA = r"(?:image|picture|photo|photograph|screenshot|video|audio|recording|diagram|chart|graph|figure|map|drawing|file|document|attachment|pdf|spreadsheet)s?"
_NEEDS_MEDIA_EN = re.compile(
    r"<\s*(?:picture|image|photo|video|audio|file)\s+attached\s*>|<\s*(?:image|img|video|audio)\s*>|\[\s*(?:image|picture|photo)\s*\]"
    rf"|\b(?:the|this|these|that|attached|above|below|following|given|provided|uploaded|accompanying|enclosed)\s+(?:\w+\s+)?{_MEDIA}\s+(?:shows|below|above|attached|provided|here)\b"
    rf"|\b(?:in|from|on|of|about|based on|describe|analy[sz]e|look at|see|watch|listen to|view|open)\s+(?:the|this|these|that)\s+(?:attached|above|following|given|provided|uploaded|accompanying)\s+{_MEDIA}\b"
    rf"|\b(?:attached|uploaded|accompanying|enclosed)\s+{_MEDIA}\b"
    rf"|\b(?:in|from|describe|analy[sz]e|look at|watch|listen to)\s+(?:this|the)\s+(?:image|picture|photo|photograph|screenshot|video|audio|recording)\b"
    r"|\b(?:visit|open|go to|click|browse|read|summari[sz]e|watch|check out)\s+(?:the\s+|this\s+)?(?:following\s+)?(?:link|url|website|web\s*page|article|page|video)?\s*(?:at\s+)?:?\s*<?https?://"
)
# substrings that are also parts of ordinary words are fenced off: 以下图案 (the pattern below),
# 地图中 (in the map), 意图中 (in the intention)
_NEEDS_MEDIA_ZH = re.compile(
    r"这张图|这幅图|这些图片|下面的图|以下图片|上面的图|(?<!以)[上下]图(?![案标书形表])|如图所示|(?<![地意试企构版蓝拼插])图中"
    r"|看图|根据图片|根据图像|根据照片|这张照片|这些照片|附件中|见附件|附件里|附图|上传的(?:文件|图片|照片)"
    r"|这段视频|这个视频|视频中|这段音频|这段录音|点击链接|打开链接|这个链接|以下链接|访问网站|打开网址"
)


def needs_media(v: View, cfg: FilterConfig) -> str | None:
    text = v.instruction + "\n" + v.input
    m = _NEEDS_MEDIA_EN.search(_norm(text))
    if m:
        return f"needs an image, file or URL ({m.group(0).strip()!r})"
    m = _NEEDS_MEDIA_ZH.search(_zh_form(text))
    if m:
        return f"needs an image, file or URL ({m.group(0)!r})"
    return None


# -- merged instructions -----------------------------------------------------------------------------

# a new task starts: "Instruction:" / "指令：" (Input/Output labels alone are how single tasks embed their input)
_MARKER = re.compile(r"(?im)^\s*(?:#+\s*)?(?:\d+\s*[.)、:]\s*)?(?:instruction|指令)\s*[:：]")
_HASH_TASK = re.compile(r"(?i)###\s*(?:instruction|input|response|指令|输入|回答)")
_TASK_ITEM = re.compile(
    r"(?im)^\s*\d+\s*[.)、]\s*(?:write|translate|summari[sz]e|explain|describe|list|generate|create|classify|"
    r"give|find|rewrite|name|identify|compose|design|suggest|provide|calculate|answer|edit|convert|"
    r"请|写|翻译|解释|描述|列出|生成|创建|给出|找出|改写|总结|计算|回答)"
)


def merged(v: View, cfg: FilterConfig) -> str | None:
    if "###" in v.instruction or _HASH_TASK.search(v.output):  # in outputs ### is usually a Markdown heading
        return "merged instructions (### separator)"
    if len(_MARKER.findall(v.instruction)) >= 2 or _MARKER.search(v.output):
        return "merged instructions (Instruction: markers)"
    if len(_TASK_ITEM.findall(v.instruction)) >= 2:
        return "merged instructions (numbered list of tasks)"
    return None


# -- repetition --------------------------------------------------------------------------------------

_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# Gopher (Rae et al. 2021) caps the share of characters inside duplicated n-grams at 0.15 (n=5) ..
# 0.10 (n=10) for documents of 50+ words. Short responses legitimately restate the question and
# repeat list stems: on LLaMA-Factory's alpaca en/zh demo sets (2,000 responses) Gopher's caps flag
# 21, twice the caps flag 3, while degenerate loops score 0.7-0.9. So: Gopher's n, twice its caps.
DUP_NGRAM_MAX = {5: 0.30, 6: 0.28, 7: 0.26, 8: 0.24, 9: 0.22, 10: 0.20}
DUP_LINE_MAX = 0.30
DUP_LINE_MIN_CHARS = 20
CJK_GRAM_SCALE = 2  # CJK tokens are characters; a word is about two
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)  # code repeats itself by nature


def _dup_ngram_share(tokens: list[str], n: int) -> float:
    if len(tokens) < 2 * n:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(tokens)
    for k in range(len(tokens) - n + 1):
        gram = tuple(tokens[k:k + n])
        if gram in seen:
            for m in range(k, k + n):
                covered[m] = True
        else:
            seen.add(gram)
    total = sum(len(t) for t in tokens)
    return sum(len(t) for t, c in zip(tokens, covered) if c) / total if total else 0.0


def _dup_line_share(lines: list[str]) -> float:
    """Share of characters in lines seen before (Gopher's dup_line_char_frac); short lines such as
    a screenplay's speaker names or list stems are left out."""
    lines = [ln for ln in lines if len(ln) >= DUP_LINE_MIN_CHARS]
    seen: set[str] = set()
    dup = 0
    for ln in lines:
        if ln in seen:
            dup += len(ln)
        seen.add(ln)
    total = sum(len(ln) for ln in lines)
    return dup / total if total and len(lines) >= 3 else 0.0


def repetition(v: View, cfg: FilterConfig) -> str | None:
    text = _FENCE.sub(" ", v.output)
    if _dup_line_share([ln.strip() for ln in text.splitlines()]) > DUP_LINE_MAX:
        return "repetitive output (duplicate lines)"
    tokens = _TOKEN.findall(text.casefold())
    cjk = sum(1 for t in tokens if len(t) == 1 and _CJK_CHAR.match(t))
    scale = CJK_GRAM_SCALE if cjk * 2 > len(tokens) else 1
    for n, limit in DUP_NGRAM_MAX.items():
        if _dup_ngram_share(tokens, n * scale) > limit:
            return f"repetitive output (duplicate {n}-word n-grams)"
    return None


# -- garbled -----------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MOJIBAKE = re.compile(
    r"[ÃÂâÅÆÐÑ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    r"|锟斤拷|烫烫烫|屯屯屯|ï¼|ã€"
)
_DIGIT_RUN = re.compile(r"(\d)\1{8}")


def garbled(v: View, cfg: FilterConfig) -> str | None:
    for text in (v.instruction, v.input, v.output):
        if "\ufffd" in text:
            return "garbled text (U+FFFD replacement character)"
        if _CONTROL.search(text):
            return "garbled text (control character)"
        if len(_MOJIBAKE.findall(text)) >= 2:
            return "garbled text (mojibake)"
        if _DIGIT_RUN.search(text):
            return "garbled text (one digit repeated 9+ times)"
    return None


# -- language ----------------------------------------------------------------------------------------

_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
_TRANSLATION = re.compile(r"translat|another language|\b(?:in|into|to) (?:english|chinese|mandarin|french|german|spanish|japanese|korean)\b"
                          r"|翻译|译成|译为|英文|英语|中文|汉语|日语|法语|德语|韩语")


def _plausible(ranked: list[tuple[str, float]], lang: str) -> bool:
    return any(code == lang and p >= PLAUSIBLE for code, p in ranked)


def _cjk_share(text: str) -> float:
    han, kana, hangul, words = script_counts(text)
    cjk = han + kana + hangul
    return cjk / (cjk + words) if cjk + words else 0.0


def language(v: View, cfg: FilterConfig) -> str | None:
    detector = get_detector(cfg.detector, cfg.lang)
    output = _FENCE.sub(" ", v.output)  # code is no language
    ranked_in = detector.ranked(v.instruction + ("\n" + v.input if v.input else ""))
    ranked_out = detector.ranked(output) if has_letters(output, 8) else []
    translation = bool(_TRANSLATION.search(_norm(v.instruction)))
    allowed = cfg.lang
    if allowed:
        for part, ranked in (("instruction", ranked_in), ("output", [] if translation else ranked_out)):
            if ranked and not any(_plausible(ranked, lang) for lang in allowed):
                return f"{part} language not allowed ({ranked[0][0]})"
    if ranked_in and ranked_out and not translation:
        lang_in, lang_out = ranked_in[0][0], ranked_out[0][0]
        if lang_in != lang_out and not _plausible(ranked_out, lang_in) and not _plausible(ranked_in, lang_out):
            # a Chinese answer full of English names or terms is still a Chinese answer, and a
            # Chinese question about English words ("用'opulent'造句") is answered in English
            if lang_in in CJK_LANGS and (_cjk_share(output) >= 0.2 or _LATIN_WORD.search(v.instruction + v.input)):
                return None
            if lang_out in CJK_LANGS and _cjk_share(v.instruction + v.input) > 0:
                return None
            return f"language mismatch (instruction {lang_in}, output {lang_out})"
    return None


Rule = Callable[[View, "FilterConfig"], "str | None"]
RULES: dict[str, Rule] = {
    "empty_output": empty_output,
    "echo": echo,
    "garbled": garbled,
    "length": length,
    "refusal": refusal,
    "needs_media": needs_media,
    "merged": merged,
    "repetition": repetition,
    "language": language,
}
DEFAULT_RULES = tuple(RULES)
