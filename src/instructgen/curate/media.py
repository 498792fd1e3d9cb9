"""needs_media: a prompt that points at content the model cannot see.

    needs_media(turn, cfg) -> str | None

Fires on references, not on words: an attachment placeholder (<image>, [图片], "<Picture Attached>"), a
pictured or attached thing pointed at from the task ("describe this photo", "the image above", "the
attached file", "这张图片", "附件中"), a URL whose page the model is asked to read ("summarize
https://…", "improve this page: https://…"), and an answer that claims to have read such a page ("The
article discusses…"). Words in a self-contained text do not count ("uploaded videos" in a word problem,
"如下图中的浮萍" in a reading passage): only the task's own words are searched (the alpaca instruction, or a
short prompt, or the first and last lines of a long one). Records with tools are exempt: a tool can fetch
the file or the page; so are records that carry their images, videos or audio (rules.carries_media).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .filter import FilterConfig
    from .rules import Turn

_VISUAL = r"(?:image|picture|photo|photograph|screenshot|video|clip|audio|recording|diagram|chart|graph|figure|drawing|painting|map|scan|illustration|infographic)s?"
_FILE = r"(?:file|document|attachment|pdf|spreadsheet|csv|excel sheet|slide deck|slides)s?"
_NOT_A_THING = r"(?!\s*(?:shoot|game|games|editor|editing|processing|recognition|classification|generation|format|quality|book|album|gallery|camera|frame|card|caption|title|name|size|library|analysis of|sharing))"

_EN = (
    r"<\s*(?:picture|image|photo|video|audio|file)\s+attached\s*>|<\s*(?:image|img|video|audio)\s*/?>|\[\s*(?:image|picture|photo|img|video|audio|attachment)(?:\s*\d+)?\s*\]"
    rf"|\b(?:in|on|of|from|about|describe|caption|analy[sz]e|identify|label|look at|what's in|explain|interpret|based on|see) (?:this|these) {_VISUAL}\b{_NOT_A_THING}"
    rf"|(?:^|[.?!] )(?:this|these) {_VISUAL} (?:is|are|shows?)\b"
    rf"|\b(?:(?:the|this|these) (?:above|below|following|provided|given|uploaded|linked)|(?:the |this |these )?(?:attached|accompanying|enclosed))"
    rf" (?:[\w-]+ ){{0,3}}{_VISUAL}\b{_NOT_A_THING}"
    rf"|\b(?:the|this) {_VISUAL} (?:above|below|attached|provided|here|shown)\b"
    rf"|\b(?:the|this|these) (?:attached|enclosed|uploaded|linked) {_FILE}\b|\b(?:i(?:'ve| have)? attached|(?:see|find|check) (?:the )?attached|attached (?:is|are|please find))\b"
    rf"|\bshown (?:in|on) (?:the )?(?:{_VISUAL}|picture)\b"
)
_ZH = (
    r"这张图|这幅图|这些图片|这些照片|这张照片|这个图片|这段视频|这个视频|这段音频|这段录音|这个文件|下面的图片|上面的图片|以下图片"
    r"|如图所示|如下图所示|见下图|根据[上下]图|[上下]图(?:中|所示|显示|展示)|如[上下]图|见附件|附件中|附件里|附图|看图|根据(?:这张|上面的|下面的)?(?:图片|图像|照片|截图)|上传的(?:文件|图片|照片)|\[图片\]|\[图\]"
    r"|点击链接|打开链接|这个链接|以下链接|访问(?:这个|以下)?(?:网站|网页|网址)|打开网址"
)
_URL = re.compile(r"https?://\S+|www\.\S+\.\w+\S*")
# asked to read what a URL holds (the text of its page is not in the prompt) ...
_PAGE = r"(?:article|page|web ?page|website|site|post|blog(?: post)?|video|link|paper|story|report|thread|repo(?:sitory)?)"
_READ_URL = re.compile(
    rf"(?i)\b(?:summari[sz]e|summary|review|improve|critique|evaluate|rate|read|visit|watch|listen to|analy[sz]e|describe"
    rf"|based on|according to|what (?:does|is|did) (?:this|the) {_PAGE}|tell me about (?:this|the) {_PAGE}"
    rf"|(?:this|the following|the) {_PAGE}\b)|总结|概括|摘要|阅读|读一下|看一下|访问|打开|分析|评价|改进|根据"
)
# ... not to work on the URL string itself
_URL_ITSELF = re.compile(r"(?i)\b(?:url|domain|extract|parse|shorten|validate|encode|decode|regex|regular expression|query string"
                         r"|http request|curl|wget|fetch|scrape|crawl|download|hyperlink|anchor|html|markdown|code)\b|网址的|链接格式|代码")
_CLAIMS_TO_HAVE_READ = re.compile(
    r"(?i)\b(?:the|this) (?:article|page|web ?page|website|site|post|blog(?: post)?|video|paper|link|story|report)"
    r" (?:discusses|explains|describes|talks about|covers|highlights|shows|is about|provides|outlines|argues|presents|features|reports)\b"
    r"|(?:这篇|该)(?:文章|网页|视频|报道)(?:讨论|介绍|讲述|描述|指出|主要)"
)
_TOOL_PROMPT = re.compile(r"(?i)toolformer|you have access to (?:the following )?(?:tools|functions)|\bplugins?\b|function call")
# substrings one of which every reference above contains: a cheap test before the regexes
_KEYS = ("imag", "pictur", "photo", "screenshot", "video", "clip", "audio", "record", "diagram", "chart", "graph",
         "figure", "drawing", "painting", "map", "scan", "illustration", "infographic", "file", "document", "attach",
         "pdf", "sheet", "csv", "slide", "<", "[", "shown", "enclos", "accompany")
_KEYS_ZH = ("图", "照片", "视频", "音频", "录音", "附件", "文件", "链接", "网站", "网页", "网址")
# a prompt that hands over a passage: figures it mentions ("如下图中的浮萍") are the passage's, not the task's
_PASSAGE = re.compile(
    r"(?i)\b(?:read|based on|according to|given|following|from|in) (?:the |this )?(?:passage|text|article|paragraph|excerpt|context"
    r"|story|document|search results)\b|^\s*(?:passage|context|article|text|background)\s*:"
    r"|阅读(?:这段|下面的|以下|下列)?(?:文字|段落|文章|材料|短文)|根据(?:这段|以下|下面的|上面的|提供的)?(?:文字|段落|文章|材料|上下文|短文|搜索结果|网络搜索结果)"
    r"|(?:段落|文章|背景|上下文|材料)[:：]|搜索结果[:：]", re.M)
MAX_WHOLE = 400  # prompts up to this many characters are searched whole
URL_CONTEXT_WORDS = 60  # more words than this beside the URL: the page's text is probably in the prompt


# "the following painting: The Mona Lisa" / "the given chart: | a | b |": the thing is in the prompt as text
_DESCRIBED = re.compile(r"(?i)\b(?:following|given|provided|below)\b")
MIN_TEXT_WORDS = 3


def _given_as_text(after: str) -> bool:
    rest = _URL.sub(" ", after)
    return len(re.findall(r"[^\W\d_]{2,}|[\u4e00-\u9fff]", rest)) >= MIN_TEXT_WORDS


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, re.Pattern]:
    return re.compile(_EN), re.compile(_ZH)


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'"))


def task_words(t: Turn) -> str:
    """The task's own words: the alpaca instruction, a short prompt, or the first and last lines of a long one."""
    text = t.instruction
    if len(text) <= MAX_WHOLE:
        return text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[:1] + lines[-2:]) if len(lines) > 3 else text[:200] + "\n" + text[-200:]


def needs_media(t: Turn, cfg: FilterConfig) -> str | None:
    if t.has_media:
        return None  # the images, videos or audio are attached to the record
    if t.has_tools or _TOOL_PROMPT.search(t.prompt[:400]):
        return None  # a tool can open the file or fetch the page
    words = task_words(t)
    lower = words.lower()
    if any(k in lower for k in _KEYS) or (not words.isascii() and any(k in words for k in _KEYS_ZH)):
        en, zh = _patterns()
        task = _fold(words)
        m = en.search(task) or zh.search(task.replace(" ", ""))
        after = m and m.string[m.end():] + " " + t.input
        if m and (_DESCRIBED.search(m.group(0)) and _given_as_text(after) or _PASSAGE.search(t.prompt)):
            m = None  # described in the prompt, or a figure of a passage the task hands over
        if m:
            return f"needs an image, file or URL ({m.group(0).strip()!r})"
    url = ("http" in t.prompt or "www." in t.prompt) and _URL.search(t.prompt)
    if url:
        rest = _URL.sub(" ", t.prompt)
        short = len(rest.split()) <= URL_CONTEXT_WORDS
        if short and (_READ_URL.search(rest) and not _URL_ITSELF.search(rest) or _CLAIMS_TO_HAVE_READ.search(t.output)):
            return f"needs the page at a URL ({url.group(0)[:60]!r})"
    return None
