"""Refusals and AI disclaimers, judged per turn: what is left of the answer once they are taken out.

    refusal(turn, cfg) -> str | None
        A non-answer: the turn holds a refusal or an AI disclaimer ("As an AI language model, I cannot…",
        "作为一个人工智能语言模型，我无法…") and, those sentences and polite filler ("Is there anything else…",
        "please consult…") taken out, less than MIN_ANSWER_UNITS of answer is left. With
        cfg.drop_disclaimers, any AI disclaimer in front of an answer counts too.
        Kept: scoped answers ("I can't draw it, but here are the figures…"); declines of actions no text
        model can take (order, book, send) — the right answer, and what tool-calling sets teach;
        answers to questions about the assistant itself ("Who are you?" "你有感情吗？"); and safety
        refusals of harmful requests, which are `safety_refusal`'s business.
    safety_refusal(turn, cfg) -> str | None
        (opt-in) a refusal of a harmful request (weapons, drugs, hacking, hate, violence, privacy, ...),
        for sets that should not teach refusing.

Phrases are matched on NFKC, case-folded text (Chinese without spaces, so "作为一个 AI 语言模型" matches).
Judged on the real sets in benchmarks/curate_real.py (judgements in benchmarks/judgements/filter.jsonl).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .filter import FilterConfig
    from .rules import Turn

MIN_ANSWER_UNITS = 25  # words (1.5 CJK characters count as one) left beyond refusals and filler
MIN_PIVOT_UNITS = 6  # "I can't X, but <this much>": a scoped answer

_AI = r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chatbot|virtual assistant|digital assistant)"
_AI_EN = (
    rf"\bas an? (?:text-based |large |helpful |responsible )?(?:{_AI}(?: (?:language )?model| assistant| system| program)?)(?=[,.;:]| i\b| my\b| it\b| there\b)"
    rf"|\bi(?:'m| am) (?:just |only |merely |simply )?(?:an? )?(?:{_AI}(?: (?:language )?model| assistant| program)?|computer program|machine)\b(?! (?:researcher|engineer|expert|company))"
    r"|\bbeing an? (?:ai|language model)\b"
)
_INABILITY_EN = (
    r"\bi(?: really)? (?:(?:cannot|can not|can't)(?! (?:stress|emphasi[sz]e|overstate|wait|believe|help but|thank|imagine|agree|say enough|recommend))|am unable to|'m unable to|am not able to|'m not able to|won't be able to"
    r"|will not be able to|am not capable of|'m not capable of|am not programmed to|'m not programmed to"
    r"|must decline|do not have the (?:ability|capability|capacity|means)|don't have the (?:ability|capability|capacity|means)"
    r"|do not have access|don't have access|have no access|do not possess|don't possess|lack the ability"
    r"|do not have (?:personal|real-time|current|up-to-date|any personal|physical|a physical|eyes|senses|feelings|emotions|opinions|memories)"
    r"|don't have (?:personal|real-time|current|up-to-date|any personal|physical|a physical|eyes|senses|feelings|emotions|opinions|memories))"
    r"|\bit is not (?:appropriate|possible|ethical) for me to\b|\bi(?:'m| am) (?:sorry|afraid),? (?:but )?(?:i|as an?|that|this|you (?:need|have|did not|didn't|haven't))\b"
    r"|\b(?:unfortunately|sorry),? (?:i|as an?)\b|\bi apologi[sz]e,? but\b|\bbeyond my (?:capabilities|abilities|scope)\b"
    r"|\bnot within my (?:capabilities|abilities)\b|\bmy knowledge cut-?off\b"
)
_AI_ZH = (
    r"作为(?:一个|一名|一款|一种|一位|一台)?(?:大型|大|基于文本的|文本|人工智能|ai|智能)?"
    r"(?:ai|人工智能|语言模型|机器人|聊天机器人|虚拟助手|智能助手|助手|程序|模型)"
    r"(?:语言模型|助手|助理|模型|程序|系统|机器人)?(?=[,，。、：:;；]|我|并|无|不|没|只|可|的我)"
    r"|我(?:只)?是(?:一个|一名|一款)?(?:ai|人工智能|语言模型|机器人|程序|计算机程序)(?:语言模型|助手|模型|程序)?"
    r"|我只是(?:一个|一名)?(?:ai|人工智能|语言模型|机器|程序|机器人)"
)
_INABILITY_ZH = (
    r"我(?:目前|暂时|并|还|真的)?(?:无法|不能|没有办法|没办法|不具备|不具有|做不到|不会提供|不会回答|不会给|不可以|没有能力|没有权限|无权)"
    r"|我没有(?:个人|自己的|任何个人的)?(?:观点|意见|看法|情感|感情|感受|偏好|喜好|经历|记忆|身体|信仰|眼睛|实体)"
    r"|我(?:并)?没有.{0,10}(?:的能力|的办法|的权限|的功能)"
    r"|(?:很|非常|十分)?(?:抱歉|对不起)[,，!！]?(?:但)?(?:我|作为|由于|这|您)|超出了我的(?:能力|范围)|我的知识(?:截止|有限)"
)
_FILLER_EN = (
    r"\bi (?:can|could|am able to|'m able to|will|would be (?:happy|glad) to|'d be (?:happy|glad) to|am (?:happy|glad) to|'m (?:happy|glad) to)"
    r" (?:still )?(?:try to )?(?:provide|offer|give) (?:you )?(?:with )?(?:some |any |general |more )?(?:advice|assistance|help|support|guidance|information)\b"
    r"|\b(?:help|assist) you (?:with )?(?:something|anything|other|that|this)\b|anything else|other questions?|feel free|let me know|happy to help|glad to help|here to help|i can help you with"
    r"|(?:please|you (?:can|could|may|might|should)(?: \w+)?(?: to)?|i (?:recommend|suggest)(?: that)?(?: you)?(?: to)?) (?:consult|check|visit|contact|refer|search|use|try|look|ask|speak|reach|provide|give|share|find|call)"
    r"|by searching|search engine|official website"
    r"|could you (?:please )?(?:provide|give|share|specify|clarify|tell)|can you (?:please )?(?:provide|give|share|specify|clarify)"
    r"|if you (?:provide|give|share|have)|more (?:information|details|context)"
)
_FILLER_ZH = r"我(?:可以|能|会|将|很乐意)(?:为您|为你|帮您|帮你)?(?:提供)?(?:帮助|协助|建议)|其他问题|其他需要|还有什么|请告诉我|请提供|如果您(?:能|可以)?提供|建议您|您可以.{0,4}(?:咨询|查询|联系|使用|尝试|访问|搜索|询问|查找|查看|找到)|随时|乐意|帮助您"

# harmful requests: refusing them is right (kept by default; `safety_refusal` drops them when asked to)
_HARMFUL_EN = (
    r"\b(?:kill|murder|assassinat|bomb|explosive|weapon|gun|firearm|poison|hack|crack(?:ing)? (?:a|the|someone|his|her) |steal|rob\b|robbery|burglar"
    r"|shoplift|fraud|scam|counterfeit|launder|drug|heroin|cocaine|meth\b|smuggl|vandal|revenge|hurt|harm|abus|bully"
    r"|racis|sexis|stereotyp|slur|discriminat|offensive|insult|fake news|misinformation|porn|sex|nude|naked|talk dirty"
    r"|suicid|self-harm|residential address|home address|private (?:data|information)|doxx|stalk|illegal|unethical|cheat"
    r"|terror|genocide|tortur|prank|brass knuckle|fake id|kidnap|blackmail|threat|violen|espionage|witness protection"
    r"|pick(?:ing)? a lock|lockpick|break(?:ing)? into|put .{0,20} out of (?:his|her|its|their) misery|jews?\b|jewish|muslims?\b|black people|asians?\b|white (?:people|race|history)"
    r"|immigrants?\b|gay|lesbian|transgender|slave|nazi|eliminate (?:people|criminals)|get back at|ruin .{0,30}reputation)"
)
_HARMFUL_ZH = (
    r"杀|谋杀|暗杀|炸弹|炸药|爆炸物|武器|枪支|毒药|毒品|贩毒|黑客|入侵|破解|盗|偷|抢劫|诈骗|骗|假钞|洗钱|报复|伤害|虐待|霸凌|欺负"
    r"|歧视|种族|偏见|刻板|低贱|劣等|色情|裸|自杀|自残|住址|隐私|违法|非法|不道德|作弊|恐怖|劝退|缺点|辱骂|侮辱|仇恨|暴力|犯罪"
    r"|赌博|走私|跟踪|监视|人肉|黑人|白人|日本人|同性恋|女性.{0,6}(?:不|低)|操纵|干涉.{0,4}判决|贿赂"
)

# a refusal that gives an ethical, legal or safety reason is a safety refusal whatever the request looked like
_ETHICS = (
    r"illegal|unlawful|unethical|ethic|immoral|moral|harm|hurt|violen|danger|unsafe|safety|inappropriate|offensive|respect"
    r"|privacy|private information|personal information|discriminat|hateful|hate speech|stereotyp|against the law|the law\b|laws\b"
    r"|criminal|attack|abus|exploit|consent|break(?:ing)? into|medical advice|legal advice|financial advice|healthcare professional|medical professional"
    r"|违法|非法|不道德|道德|伦理|伤害|暴力|危险|不安全|歧视|不当|不恰当|冒犯|隐私|尊重|犯罪|攻击|侮辱|仇恨|偏见|医疗建议|法律建议"
)

# questions about the assistant itself: "As an AI, I have no feelings" answers them
_ABOUT_YOU_EN = (
    r"\b(?:who|what) (?:are|r) (?:you|u)\b|\byour (?:name|purpose|capabilit|abilit|limitation|training|creator|developer|model"
    r"|feeling|emotion|architecture|knowledge|response|nature)|\b(?:introduce|describe|tell (?:me|us) (?:a little |more )?about) yourself\b"
    r"|\bare you (?:a |an |human|real|alive|conscious|sentient|self-aware|able|capable|trained|programmed)"
    r"|\bdo you (?:have (?:feelings|emotions|a body|consciousness|a name|memory|memories|access)|feel|dream|sleep|learn|remember)"
    r"|\bhow (?:do|does|did|were) (?:you|moss)\b|\bcan you (?:see|hear|feel|learn|remember|browse|access)\b"
    r"|\b(?:what|who|how) (?:is|are|does|did|was|were) moss\b|\bmoss'?s? (?:capabilit|function|abilit|training|advantage|develop|compare)"
)
_ABOUT_YOU_ZH = (
    r"你是谁|你叫什么|你的名字|介绍(?:一下)?(?:你|您)自己|你是(?:人|机器|真人|ai|人工智能|什么)|你有(?:没有)?(?:感情|情感|意识|身体|思想|自我|情绪|名字)"
    r"|你(?:能|会|可以)做(?:什么|哪些)|你的(?:训练|回复|能力|原理|模型|开发|创造|局限|功能|对话)|你是(?:如何|怎么)|你(?:看到|看见|听到)"
    r"|moss(?:是|有|能|具备|相对|在什么|的(?:功能|能力|开发|训练|优势|发展))"
    r"|你有多少|你(?:能|会)(?:不能)?(?:看|听|感觉|学习|记住)|(?:你|您)做了什么"
)

# actions in the world: declining them is the right answer, not a non-answer
_ACTIONS_EN = (r"(?:order|book|buy|purchase|reserve|schedule|send|email|text|call|phone|pay|transfer|deliver|ship|pick up"
               r"|drive|take out|turn (?:on|off)|set (?:an? )?(?:alarm|reminder|timer)|play (?:a |some |the )?(?:song|music)"
               r"|make (?:a|the) (?:call|reservation|payment|booking)|post|upload|install|print)")
_ACTION_EN = (rf"\b(?:can|could|would|will) you (?:please |also |now |then )?(?:help me |go ahead and )?{_ACTIONS_EN}\b"
              rf"|\bi (?:also )?(?:want|need|would like|'d like) (?:you )?to {_ACTIONS_EN}\b|(?m:^)\W*(?:please )?{_ACTIONS_EN}\b")
_ACTIONS_ZH = r"(?:订|预订|预定|购买|买|下单|发送|发邮件|打电话|支付|转账|送|拿|打扫|做饭|开灯|关灯|设置闹钟|播放|安装|打印)"
_ACTION_ZH = rf"(?:帮我|替我|给我|请|你能|你可以|能否|可以)(?:帮我|替我)?{_ACTIONS_ZH}|(?:把|将).{{0,12}}(?:拿|送|扔|递|给我)"


@lru_cache(maxsize=1)
def _patterns() -> dict[str, re.Pattern]:
    return {
        "trigger_en": re.compile(_AI_EN + "|" + _INABILITY_EN),
        "ai_en": re.compile(_AI_EN),
        "unable_en": re.compile(_INABILITY_EN),
        "trigger_zh": re.compile(_AI_ZH + "|" + _INABILITY_ZH),
        "ai_zh": re.compile(_AI_ZH),
        "unable_zh": re.compile(_INABILITY_ZH),
        "filler": re.compile(_FILLER_EN + "|" + _FILLER_ZH),
        "harmful": re.compile(_HARMFUL_EN + "|" + _HARMFUL_ZH),
        "ethics": re.compile(_ETHICS),
        "about_you": re.compile(_ABOUT_YOU_EN + "|" + _ABOUT_YOU_ZH),
        "action": re.compile(_ACTION_EN + "|" + _ACTION_ZH),
    }


_PIVOT = re.compile(r",? (?:but|however|instead|though|although|yet)\b|但是|但|不过|然而|可是")
_PIVOT_START = re.compile(r"\s*(?:but|however|instead|that said|nevertheless|still|that being said|nonetheless)\b|\s*(?:但是|但|不过|然而|可是|尽管如此)")
_OFFER = re.compile(r"\s*(?:i|we) (?:can|could|may|might|would|will|am happy to|'d be happy to|'m happy to)\b|\s*我(?:可以|能|会|将|很乐意)")
_ASKS_FOR_APOLOGY = re.compile(r"(?i)apologi[sz]|say (?:you're |you are )?sorry|道歉|说对不起")
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"[^\W\d_\u3400-\u4dbf\u4e00-\u9fff]+|\d+")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"[ \t]+", " ", text)


def _fold_zh(sentence: str) -> str:
    return re.sub(r"\s+", "", sentence)


def _units(text: str) -> float:
    return len(_WORD.findall(text)) + len(_CJK.findall(text)) / 1.5


class Found:
    """What a turn's refusal/disclaimer sentences are, and how much answer is left around them."""

    __slots__ = ("phrase", "ai", "refusal_sentences", "left", "opens")

    def __init__(self, phrase: str, ai: bool, refusal_sentences: list[str], left: float, opens: bool):
        self.phrase = phrase
        self.ai = ai
        self.refusal_sentences = refusal_sentences
        self.left = left
        self.opens = opens  # the turn opens with the refusal

    def cites_ethics(self) -> bool:
        ethics = _patterns()["ethics"]
        return any(ethics.search(s) for s in self.refusal_sentences)


# substrings one of which every refusal/disclaimer phrase contains: a cheap test before the regexes
_KEYS = ("i can", "i'm", "i am", "i\u2019m", "i won", "i will", "i must", "i do", "i have", "i lack", "unable", "not able",
         "sorry", "apolog", "unfortunately", " ai", "a.i.", "intelligence", "language model", "llm", "chatbot",
         "assistant", "beyond my", "within my", "knowledge cut", "for me to", "i really", "being a")
_KEYS_ZH = ("无法", "不能", "没有办法", "没办法", "不具备", "不具有", "做不到", "不会", "不可以", "没有能力", "没有权限", "无权",
            "我没有", "抱歉", "对不起", "超出", "知识", "作为", "我是", "我只是")


def _may_refuse(output: str) -> bool:
    lower = output.lower()
    return any(k in lower for k in _KEYS) or (not output.isascii() and any(k in output for k in _KEYS_ZH))


def find(output: str) -> Found | None:
    """The refusal/disclaimer sentences of an output, or None when it has none."""
    if not _may_refuse(output):
        return None
    p = _patterns()
    folded = _fold(output)
    if not (p["trigger_en"].search(folded) or p["trigger_zh"].search(_fold_zh(folded))):
        return None
    phrase, ai, refusing, left, opens = "", False, [], 0.0, False
    after_refusal = False
    for k, sentence in enumerate(_SENTENCE.findall(folded)):
        zh = _fold_zh(sentence)
        m_ai = p["ai_en"].search(sentence) or p["ai_zh"].search(zh)
        m_unable = p["unable_en"].search(sentence) or p["unable_zh"].search(zh)
        # an inability counts where a refusal stands: up front, or next to an AI disclaimer
        if m_unable and (m_ai or k < 2):
            m = m_ai or m_unable
            phrase = phrase or m.group(0)
            ai = ai or bool(m_ai)
            refusing.append(sentence)
            opens = opens or k == 0
            before = sentence[:m.start()]
            if not p["filler"].search(before):
                left += _units(before)  # "An AI cannot taste food, and I cannot stress that enough" 
            after = _after_pivot(sentence, max(m.end(), (m_unable or m).end()))
            left += after if after < MIN_PIVOT_UNITS else MIN_ANSWER_UNITS
            after_refusal = True
            continue
        if not p["filler"].search(sentence):
            units = _units(sentence)
            # "I can't X. However, <the answer>": a scoped answer
            left += MIN_ANSWER_UNITS if after_refusal and units >= MIN_PIVOT_UNITS and _PIVOT_START.match(sentence) else units
        after_refusal = False
    return Found(phrase.strip(), ai, refusing, left, opens) if refusing else None


def _after_pivot(sentence: str, end: int) -> float:
    """Units of answer after "..., but" in a refusal sentence ("I can't order it, but here is how to")."""
    p = _patterns()
    pivots = list(_PIVOT.finditer(sentence, end))
    if not pivots:
        return 0.0
    after = sentence[pivots[-1].end():]
    if p["unable_en"].search(after) or p["unable_zh"].search(_fold_zh(after)) or p["filler"].search(after):
        return 0.0
    if _OFFER.match(after) and not re.search(r"[:：]\s*\S+\s+\S", after):
        return 0.0  # "but I can introduce the positions" offers; "but I can give you this: ..." delivers
    return _units(after)


def _harmful(t: Turn) -> bool:
    harmful = _patterns()["harmful"]
    return bool(harmful.search(_fold(t.prompt)) or (t.previous_prompt and harmful.search(_fold(t.previous_prompt))))


def refusal(t: Turn, cfg: FilterConfig) -> str | None:
    found = find(t.output)
    if found is None:
        return None
    p = _patterns()
    prompt = _fold(t.instruction)
    if p["about_you"].search(prompt) or p["about_you"].search(_fold_zh(prompt)):
        return None  # "Who are you?" "Do you have feelings?": the disclaimer is the answer
    if _ASKS_FOR_APOLOGY.search(prompt):
        return None
    if _harmful(t) or found.cites_ethics():
        return None  # a safety refusal: kept unless safety_refusal is on
    if found.left >= MIN_ANSWER_UNITS:
        if cfg.drop_disclaimers and found.ai:
            return f"AI disclaimer in an answer ({found.phrase!r})"
        return None  # a scoped answer: it declines a part and answers the rest
    if p["action"].search(prompt) and not t.input:
        return None  # declining to order, book or send is the right answer for a text model
    return f"non-answer: refusal or AI disclaimer ({found.phrase!r})"


def safety_refusal(t: Turn, cfg: FilterConfig) -> str | None:
    found = find(t.output)
    if found is None or not (found.opens or found.left < MIN_ANSWER_UNITS):
        return None
    if not (_harmful(t) or found.cites_ethics()):
        return None
    return f"safety refusal ({found.phrase!r})"
