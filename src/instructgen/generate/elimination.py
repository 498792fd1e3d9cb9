"""Evol-Instruct's four elimination rules (WizardLM, arXiv:2304.12244, section 3.3), as pure functions.

    1. no information gain: the model, asked the paper's equality prompt about parent and evolution,
       answers "Equal"                                              -> NO_GAIN (see `parse_equality`)
    2. the answer contains "sorry" and is under 80 words            -> SORRY
    3. the answer is only punctuation and stop words                -> ONLY_STOP_WORDS
    4. the evolved instruction copies the prompt's scaffolding
       ("#Rewritten Prompt#", "given prompt", ...)                  -> COPIES_PROMPT

Chinese: rule 2 also takes 抱歉 / 对不起 and counts characters (80 of them) where English counts words; stop
words are NLTK's English list and the commonest Chinese function characters.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ..prompts.evol_instruct import SCAFFOLDING

NO_GAIN = "no information gain (judged Equal to its parent)"
SORRY = 'answer says "sorry" in under 80 words'
ONLY_STOP_WORDS = "answer is only punctuation and stop words"
COPIES_PROMPT = "instruction copies the evolving prompt"
RULES = (NO_GAIN, SORRY, ONLY_STOP_WORDS, COPIES_PROMPT)

SORRY_WORDS = ("sorry", "抱歉", "对不起")
SHORT_ANSWER = 80  # words (English) or characters (Chinese), the paper's "relatively short"


def copies_prompt(instruction: str, lang: str) -> str | None:
    """Rule 4: the scaffolding phrase the instruction copies, or None."""
    low = instruction.casefold()
    return next((phrase for phrase in SCAFFOLDING[lang] if phrase.casefold() in low), None)


def says_sorry_briefly(answer: str) -> bool:
    """Rule 2: "sorry" (抱歉, 对不起) in an answer of fewer than 80 words (CJK characters count one each)."""
    low = answer.casefold()
    return any(w in low for w in SORRY_WORDS) and _length(answer) < SHORT_ANSWER


def only_stop_words(answer: str) -> bool:
    """Rule 3: nothing but punctuation, symbols, white space and stop words (an empty answer included)."""
    stop = _stop_words()
    for token in re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", answer)):
        if _is_cjk(token):
            if any(ch not in stop for ch in token):
                return False
        elif token.casefold() not in stop:
            return False
    return True


def parse_equality(text: str) -> bool | None:
    """The judge's answer to the equality prompt: True for "Equal", False for "Not Equal", None if neither."""
    low = " ".join(text.casefold().split())
    if re.search(r"\bnot\s+equal\b|不相同|不等同|不同", low):
        return False
    if re.search(r"\bequal\b|相同|等同", low):
        return True
    return None


def answer_problem(answer: str) -> str | None:
    """Rules 2 and 3 on an evolved instruction's answer."""
    if says_sorry_briefly(answer):
        return SORRY
    if only_stop_words(answer):
        return ONLY_STOP_WORDS
    return None


def _length(text: str) -> int:
    cjk = sum(1 for ch in text if _is_cjk(ch))
    return cjk + len(re.findall(r"[^\W_]+", re.sub(r"[\u3400-\u9fff]", " ", text)))


def _is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


# NLTK's English stop word list (nltk.corpus.stopwords, "english") and the commonest Chinese function characters
EN_STOP_WORDS = """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
whom this that that'll these those am is are was were be been being have has had having do does did doing a an the
and but if or because as until while of at by for with about against between into through during before after above
below to from up down in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just don don't should
should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't
haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
weren weren't won won't wouldn wouldn't""".split()
ZH_STOP_CHARS = "的了是在和与及或也都就而且但把被让给对从向于以之其这那此些个么吗呢吧啊呀哦嗯着过们我你他她它"


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    return frozenset([*EN_STOP_WORDS, *ZH_STOP_CHARS])
