"""MT-bench's pairwise judge: Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
NeurIPS 2023 Datasets and Benchmarks, and github.com/lm-sys/FastChat, fastchat/llm_judge/data/judge_prompts.jsonl,
the prompt named "pair-v2" (system prompt and template verbatim). Written for GPT-4 as the judge.

The verdict is "[[A]]", "[[B]]" or "[[C]]" (a tie). The paper asks both orders (A/B, then B/A) and counts a
pair only when the two verdicts agree; a disagreement is position bias, not a preference.
"""

from __future__ import annotations

PAIR_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to "
    "the user question displayed below. You should choose the assistant that follows the user's instructions and "
    "answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of "
    "the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective "
    "as possible. After providing your explanation, output your final verdict by strictly following this "
    "format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie."
)

PAIR_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)


def pairwise_messages(question: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    user = PAIR_TEMPLATE.replace("{question}", question).replace("{answer_a}", answer_a) \
        .replace("{answer_b}", answer_b)
    return [{"role": "system", "content": PAIR_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'C' (tie) from the judge's answer, read as FastChat reads it ("[[A]]" anywhere first, then
    "[[B]]", then "[[C]]"); None when there is no verdict."""
    return next((v for v in "ABC" if f"[[{v}]]" in text), None)
