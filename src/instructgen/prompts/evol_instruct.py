"""Evol-Instruct (WizardLM): Xu et al., "WizardLM: Empowering Large Language Models to Follow Complex
Instructions", arXiv:2304.12244 (ICLR 2024), and its code, github.com/nlpxucan/WizardLM,
Evol_Instruct/depth.py and Evol_Instruct/breadth.py.

In-depth evolving: add constraints, deepen, concretize, increase reasoning steps (the four methods of depth.py,
verbatim) and complicate the input (the paper's fifth in-depth method, appendix A; depth.py ships no text for
it, so ours is the depth prompt with the paper's wording of the method: add data in a format as input).
In-breadth evolving: breadth.py's prompt, verbatim. The equality prompt that judges "no information gain"
(elimination rule 1) is the paper's, section 3.3 / appendix.

The texts were written for gpt-3.5-turbo (the paper evolved with ChatGPT; "chatgpt and GPT4" appear in the
prompt itself). The `\\r\\n` line ends of the published strings are kept as `\\n`.
"""

from __future__ import annotations

MUTATIONS = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth")

DEPTH_BASE = {
    "en": (
        "I want you act as a Prompt Rewriter.\n"
        "Your objective is to rewrite a given prompt into a more complex version to make those famous AI systems "
        "(e.g., chatgpt and GPT4) a bit harder to handle.\n"
        "But the rewritten prompt must be reasonable and must be understood and responded by humans.\n"
        "Your rewriting cannot omit the non-text parts such as the table and code in #The Given Prompt#:. Also, "
        "please do not omit the input in #The Given Prompt#. \n"
        "You SHOULD complicate the given prompt using the following method: \n"
        "{method} \n"
        "You should try your best not to make the #Rewritten Prompt# become verbose, #Rewritten Prompt# can only "
        "add 10 to 20 words into #The Given Prompt#. \n"
        "'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not allowed to "
        "appear in #Rewritten Prompt#\n"
        "#The Given Prompt#: \n {instruction} \n"
        "#Rewritten Prompt#:\n"
    ),
    "zh": (
        "我希望你扮演一个提示改写者。\n"
        "你的目标是把给定的提示改写成一个更复杂的版本，让那些著名的 AI 系统（例如 ChatGPT 和 GPT-4）更难处理一些。\n"
        "但改写后的提示必须合理，必须能被人理解并作答。\n"
        "改写时不能省略 #给定提示# 中的非文本部分，例如表格和代码；也不要省略 #给定提示# 中的输入。\n"
        "你应当用下面的方法让给定提示更复杂：\n"
        "{method}\n"
        "尽量不要让 #改写后的提示# 变得冗长，#改写后的提示# 只能在 #给定提示# 的基础上增加 10 到 20 个字词。\n"
        "'#给定提示#'、'#改写后的提示#'、'给定提示' 和 '改写后的提示' 不允许出现在 #改写后的提示# 中\n"
        "#给定提示#：\n {instruction} \n"
        "#改写后的提示#：\n"
    ),
}

DEPTH_METHODS = {
    "en": {
        "add_constraints": "Please add one more constraints/requirements into #The Given Prompt#'",
        "deepen": "If #The Given Prompt# contains inquiries about certain issues, the depth and breadth of the "
                  "inquiry can be increased.",
        "concretize": "Please replace general concepts with more specific concepts.",
        "increase_reasoning": "If #The Given Prompt# can be solved with just a few simple thinking processes, you "
                              "can rewrite it to explicitly request multiple-step reasoning.",
        "complicate_input": "Please add {data_format} format data as input data in #Rewritten Prompt#, and make "
                            "#The Given Prompt# refer to it.",
    },
    "zh": {
        "add_constraints": "请在 #给定提示# 中再增加一个约束或要求。",
        "deepen": "如果 #给定提示# 包含对某些问题的询问，可以增加询问的深度和广度。",
        "concretize": "请把笼统的概念替换成更具体的概念。",
        "increase_reasoning": "如果 #给定提示# 只需几步简单的思考就能解决，你可以改写它，明确要求多步推理。",
        "complicate_input": "请在 #改写后的提示# 中加入 {data_format} 格式的数据作为输入，并让 #给定提示# 引用它。",
    },
}

# the input formats the paper's "complicate input" examples use (code, tables, formulas, markup)
INPUT_FORMATS = ("XML data", "SQL database", "Python code", "JSON data", "HTML page", "Shell cmd", "Latex",
                 "Markdown table", "Excel table", "formula")

BREADTH = {
    "en": (
        "I want you act as a Prompt Creator.\n"
        "Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.\n"
        "This new prompt should belong to the same domain as the #Given Prompt# but be even more rare.\n"
        "The LENGTH and complexity of the #Created Prompt# should be similar to that of the #Given Prompt#.\n"
        "The #Created Prompt# must be reasonable and must be understood and responded by humans.\n"
        "'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed to appear in "
        "#Created Prompt#\n"
        "#Given Prompt#: \n {instruction} \n"
        "#Created Prompt#:\n"
    ),
    "zh": (
        "我希望你扮演一个提示创作者。\n"
        "你的目标是从 #给定提示# 中获得灵感，创作一个全新的提示。\n"
        "这个新提示应当与 #给定提示# 属于同一领域，但更加少见。\n"
        "#创作的提示# 的长度和复杂度应与 #给定提示# 相近。\n"
        "#创作的提示# 必须合理，必须能被人理解并作答。\n"
        "'#给定提示#'、'#创作的提示#'、'给定提示' 和 '创作的提示' 不允许出现在 #创作的提示# 中\n"
        "#给定提示#：\n {instruction} \n"
        "#创作的提示#：\n"
    ),
}

EQUALITY = {
    "en": (
        "Here are two Instructions to ChatGPT AI, do you think they are equal to each other, which meet the "
        "following requirements:\n"
        "1. They have same constraints and requirments.\n"
        "2. They have same depth and breadth of the inquiry.\n"
        "The First Prompt: {first}\n"
        "The Second Prompt: {second}\n"
        "Your Judgement (Just answer: Equal or Not Equal. No need to explain the reason.):"
    ),
    "zh": (
        "下面是给 ChatGPT AI 的两条指令，你认为它们是否相同，即满足以下要求：\n"
        "1. 它们有相同的约束和要求。\n"
        "2. 它们询问的深度和广度相同。\n"
        "第一条提示：{first}\n"
        "第二条提示：{second}\n"
        "你的判断（只回答：Equal 或 Not Equal，无需解释原因。）："
    ),
}

# words of the prompts that an evolved instruction must not copy (elimination rule 4; the paper's examples
# are "given prompt", "rewritten prompt", "#Rewritten Prompt#"), matched case-insensitively
SCAFFOLDING = {
    "en": ("#rewritten prompt#", "#the given prompt#", "#given prompt#", "#created prompt#", "given prompt",
           "rewritten prompt", "created prompt"),
    "zh": ("#改写后的提示#", "#给定提示#", "#创作的提示#", "给定提示", "改写后的提示", "创作的提示",
           "#rewritten prompt#", "given prompt", "rewritten prompt", "created prompt"),
}


def evolution_prompt(instruction: str, mutation: str, lang: str, data_format: str = INPUT_FORMATS[0]) -> str:
    if mutation == "breadth":
        return BREADTH[lang].replace("{instruction}", instruction)
    method = DEPTH_METHODS[lang][mutation].replace("{data_format}", data_format)
    return DEPTH_BASE[lang].replace("{method}", method).replace("{instruction}", instruction)


def equality_prompt(first: str, second: str, lang: str) -> str:
    return EQUALITY[lang].replace("{first}", first).replace("{second}", second)
