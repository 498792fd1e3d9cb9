"""Language identification for short instruction text, behind one small interface.

    get_detector(name: str = "script+langdetect", languages: Sequence[str] = ()) -> Detector
        name: "script+langdetect" (default), "langdetect" (alone), "lingua" (restricted to
        `languages` when given, which makes it unable to name anything else; the filter passes the
        requested languages plus their confusable ones, curate.language.candidates), "script+lingua",
        "script" (no statistical step: Latin-script text is "latin").
    Detector.detect(text: str) -> str | None
        an ISO 639-1 code ("en", "zh", "ja", "ko", ...), or None when the text has too few
        letters to tell (numbers, code, a single word).
    Detector.ranked(text: str) -> list[tuple[str, float]]
        candidate languages with probabilities, best first ([] when it cannot tell); the filter
        treats a language as plausible above PLAUSIBLE, since short English texts often come out
        "fr 0.43, en 0.29" from langdetect.
    script_language(text) -> str | None
        zh / ja / ko from Han, kana and hangul counts; None for other scripts.

Script first: Han/kana/hangul ratios settle Chinese, Japanese and Korean before any statistical
model (langdetect calls about a fifth of short Chinese instructions Korean); ASCII text of five
words or more where a quarter are common English words ("the", "of", "is", "how", "many", ...) and
at most one is a French/German/Spanish/Italian/Portuguese/Dutch function word ("da Vinci") is
English; Latin-script text under five words gets no opinion (langdetect calls "Write a poem"
Romanian); single letters are not words (variables: "若a+b=6，则a+b+c=多少？" is Chinese). Only
what is left (other Latin-script text, unusual English) costs a model call (~2 ms with
langdetect, ~50 us with lingua restricted to the candidates), which is what makes the filter fast;
benchmarks/filter.py measures each detector on generated and on real records. Latin words count as
units against CJK characters, so "请解释 machine learning 的原理" is Chinese and "The word 你好
means hello" is English. langdetect is seeded (DetectorFactory.seed = 0; unseeded it relabels
about 11 % of short texts between runs) and sees at most MAX_CHARS characters.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Protocol, Sequence

MAX_CHARS = 300
MIN_LETTERS = 4  # fewer letters than this: no opinion
PLAUSIBLE = 0.2

HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))  # CJK ideographs: extension A, unified, compatibility
HAN_CLASS = "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in HAN_RANGES)  # for a regex character class
_HAN = re.compile(f"[{HAN_CLASS}]")
_NOT_HAN = re.compile(f"[^{HAN_CLASS}]+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN_OR_KANA = re.compile(f"{_HAN.pattern}|{_KANA.pattern}")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
# words of another script, two letters or more (single letters are variables: "若a+b=6，则a+b+c=多少？" is Chinese)
_OTHER_WORD = re.compile(r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]{2,}")


class Detector(Protocol):
    name: str

    def detect(self, text: str) -> str | None: ...

    def ranked(self, text: str) -> list[tuple[str, float]]: ...


def script_counts(text: str) -> tuple[int, int, int, int]:
    """(han, kana, hangul, other words) in the first MAX_CHARS characters."""
    return _script_counts(text[:MAX_CHARS])


def writes_han_or_kana(text: str) -> bool:
    """Whether the first MAX_CHARS characters hold Han or kana (script_counts' first two, without counting)."""
    return bool(_HAN_OR_KANA.search(text, 0, MAX_CHARS))


def count_han(text: str) -> int:
    """How many Han characters the text holds (what len(_HAN.findall(text)) says, without a string per
    character: the runs between them are few)."""
    return len(text) - sum(map(len, _NOT_HAN.findall(text)))


@lru_cache(maxsize=256)  # the filter's rules ask this of the same prompt and answer several times over
def _script_counts(text: str) -> tuple[int, int, int, int]:
    return (count_han(text), len(_KANA.findall(text)), len(_HANGUL.findall(text)),
            len(_OTHER_WORD.findall(text)))


def script_language(text: str) -> str | None:
    if text.isascii():
        return None
    han, kana, hangul, words = script_counts(text)
    cjk = han + kana + hangul
    if cjk == 0:
        return None
    # one CJK character weighs as much as a whole word of another script (a Chinese word is
    # 1-2 characters), which keeps English terms inside Chinese text from outvoting it
    if cjk < words:
        return None
    if kana and kana >= 0.25 * (han + kana):  # Japanese prose is 40-70 % kana; Chinese quoting a name, little
        return "ja"
    if hangul > han + kana:
        return "ko"
    return "zh" if han else ("ja" if kana else "ko")


_LETTER_RUN = re.compile(r"[^\W\d_]+")


def has_letters(text: str, minimum: int = MIN_LETTERS) -> bool:
    if text[:minimum].isalpha() and len(text) >= minimum:  # the first run is long enough (isalpha: a letter of _LETTER_RUN)
        return True
    seen = 0
    for run in _LETTER_RUN.finditer(text, 0, MAX_CHARS):
        seen += len(run.group(0))
        if seen >= minimum:
            return True
    return False


class LangdetectDetector:
    """langdetect alone (seeded); its zh-cn/zh-tw are reported as zh."""

    name = "langdetect"

    def __init__(self) -> None:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import init_factory

        DetectorFactory.seed = 0
        init_factory()  # load the profiles now, not lazily inside the first detect() of some thread

    def detect(self, text: str) -> str | None:
        from langdetect import detect
        from langdetect.lang_detect_exception import LangDetectException

        if not has_letters(text):
            return None
        try:
            code = detect(text[:MAX_CHARS])
        except LangDetectException:
            return None
        return code.split("-")[0]

    def ranked(self, text: str) -> list[tuple[str, float]]:
        from langdetect import detect_langs
        from langdetect.lang_detect_exception import LangDetectException

        if not has_letters(text):
            return []
        try:
            found = detect_langs(text[:MAX_CHARS])
        except LangDetectException:
            return []
        merged: dict[str, float] = {}
        for item in found:
            code = item.lang.split("-")[0]
            merged[code] = merged.get(code, 0.0) + item.prob
        return sorted(merged.items(), key=lambda kv: -kv[1])


class ScriptDetector:
    name = "script"

    def detect(self, text: str) -> str | None:
        if not has_letters(text, 2):
            return None
        return script_language(text) or "latin"

    def ranked(self, text: str) -> list[tuple[str, float]]:
        lang = self.detect(text)
        return [(lang, 1.0)] if lang else []


# The commonest English words (function words and everyday verbs/nouns). English prose is 40-55 % these;
# French, German, Spanish, Italian, Portuguese or Dutch prose shares a few of them ("a", "in", "die",
# "do", "me") but far fewer, and has its own function words (FOREIGN_WORDS), which English lacks.
ENGLISH_WORDS = frozenset("""the of and to a in is it you that he was for on are with as i his they be at one have this
from or had by but not what all were we when your can said there use an each which she do how their if will up other
about out many then them these so some her would make like him into time has look two more write go see number no way
could people my than first been call who its now find long down day did get come made may part over new take only
little work know place year live me back give most very after thing our just name good sentence man think say great
where help through much before line right too mean old any same tell follow came want show also around form three
small set put end does another well large must big even such because turn here why ask went men read need different
home us move try kind hand again change off play away point page answer found study still learn should world high
every near add food between own below country plant last school father keep tree never start city earth eye light
thought head under story saw left few while along might close something seem next hard open example begin life always
those both paper together got group often run important until children side feet car mile night walk white sea began
grow took river four carry state once book hear stop without second later miss idea enough eat face watch far really
almost let above girl sometimes mountain cut young talk soon list song being leave family it's don't i'm isn't
there's here's that's what's can't won't didn't doesn't you're they're we're let's please explain describe give list
create provide following given generate identify based using total how many much each per cost costs spent spend
buy bought sold sell money dollars more less than twice half times hour hours minutes days weeks week month months
""".split())
FOREIGN_WORDS = frozenset("""le la les des est une du au aux et je tu nous vous ce cette qui que der das und ist nicht ein eine
mit den dem ich sie wir el los las es una y del por para con il di che non della gli sono het een van en niet dat zijn os
um uma não são pas sur avec dans pour mais ou où wie auf für sich auch nach zu bei como pero muy está esta también
""".split())
_ASCII_WORD = re.compile(r"[A-Za-z]{2,}(?:'[a-z]+)?|\b[Ii]\b")  # single letters are mostly variables (a+b)
MIN_MODEL_WORDS = 5  # shorter Latin-script text: "Write a poem" is Romanian, "Tell me a joke" Finnish to langdetect
MIN_ENGLISH_SHARE = 0.25


def _ascii_words(text: str) -> list[str] | None:
    """The lower-cased ASCII words of the text, or None when other-script words outnumber them."""
    words = _ASCII_WORD.findall(text.lower())
    if not words or (not text.isascii() and len(_OTHER_WORD.findall(text)) > 2 * len(words)):
        return None
    return words


def plain_ascii(text: str) -> bool:
    """Mostly ASCII words, with at most one function word of French, German, Spanish, ... among them."""
    words = _ascii_words(text[:MAX_CHARS])
    return words is not None and sum(map(FOREIGN_WORDS.__contains__, words)) <= 1


def looks_english(text: str) -> bool:
    """ASCII text of MIN_MODEL_WORDS+ words, a quarter or more of them common English words, and another
    language's function words rare (names such as "da Vinci" or "La Paz" are allowed one)."""
    words = _ascii_words(text[:MAX_CHARS])
    if words is None or len(words) < MIN_MODEL_WORDS:
        return False
    hits = sum(map(ENGLISH_WORDS.__contains__, words))
    foreign = sum(map(FOREIGN_WORDS.__contains__, words))
    return hits >= 2 and hits >= MIN_ENGLISH_SHARE * len(words) and foreign <= max(1, hits // 8)


class ScriptThen:
    """The script decides CJK, English function words settle plain English, `fallback` decides the rest
    of what has MIN_MODEL_WORDS words or more (shorter Latin-script text: no opinion)."""

    def __init__(self, fallback: Detector):
        self.fallback = fallback
        self.name = f"script+{fallback.name}"

    def _quick(self, text: str) -> str | None:
        return script_language(text) or ("en" if looks_english(text) else None)

    def _too_short(self, text: str) -> bool:
        return len(_OTHER_WORD.findall(text[:MAX_CHARS])) < MIN_MODEL_WORDS

    def detect(self, text: str) -> str | None:
        if not has_letters(text, 2):
            return None
        quick = self._quick(text)
        if quick or self._too_short(text):
            return quick
        return self.fallback.detect(text)

    def ranked(self, text: str) -> list[tuple[str, float]]:
        if not has_letters(text, 2):
            return []
        quick = self._quick(text)
        if quick or self._too_short(text):
            return [(quick, 1.0)] if quick else []
        ranked = self.fallback.ranked(text)
        if plain_ascii(text) and not any(code == "en" and p >= PLAUSIBLE for code, p in ranked):
            # langdetect calls "Create a recipe for banana ice cream." Romanian: plain ASCII text
            # without another language's function words stays plausibly English
            ranked = [*ranked, ("en", PLAUSIBLE)]
        return ranked


class LinguaDetector:
    name = "lingua"

    def __init__(self, languages: Sequence[str] = ()):
        try:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
        except ImportError:
            from ..errors import InstructgenError

            raise InstructgenError("the lingua detector needs lingua-language-detector: "
                                   "pip install lingua-language-detector (or pip install 'instructgen[bench]')") from None

        if languages:
            unknown = [code for code in languages if not hasattr(IsoCode639_1, code.upper())]
            if unknown:
                from ..errors import InstructgenError

                raise InstructgenError(f"--lang: lingua does not know {', '.join(unknown)} (use ISO 639-1 codes such as en, zh)")
            langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in languages]
            builder = LanguageDetectorBuilder.from_languages(*langs) if len(langs) > 1 else \
                LanguageDetectorBuilder.from_languages(*langs, Language.ENGLISH if langs[0] != Language.ENGLISH else Language.CHINESE)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        self._detector = builder.build()

    def detect(self, text: str) -> str | None:
        if not has_letters(text):
            return None
        lang = self._detector.detect_language_of(text[:MAX_CHARS])
        return lang.iso_code_639_1.name.lower() if lang is not None else None

    def ranked(self, text: str) -> list[tuple[str, float]]:
        if not has_letters(text):
            return []
        values = self._detector.compute_language_confidence_values(text[:MAX_CHARS])
        return [(v.language.iso_code_639_1.name.lower(), v.value) for v in values if v.value > 0]


DETECTORS = ("script+langdetect", "langdetect", "lingua", "script+lingua", "script")


@lru_cache(maxsize=16)
def _build(name: str, languages: tuple[str, ...]) -> Detector:
    if name == "langdetect":
        return LangdetectDetector()
    if name == "script+langdetect":
        return ScriptThen(LangdetectDetector())
    if name == "lingua":
        return LinguaDetector(languages)
    if name == "script+lingua":
        return ScriptThen(LinguaDetector(languages))
    if name == "script":
        return ScriptDetector()
    from ..errors import InstructgenError

    raise InstructgenError(f"unknown language detector {name!r}; choose one of: {', '.join(DETECTORS)}")


_BUILD_LOCK = threading.Lock()


def get_detector(name: str = "script+langdetect", languages: Sequence[str] = ()) -> Detector:
    """A shared detector; safe to call from several threads (built once, under a lock)."""
    with _BUILD_LOCK:
        return _build(name, tuple(sorted(set(languages))))
