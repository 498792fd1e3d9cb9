"""Multi-turn self-chat in the style of Baize (Xu et al., "Baize: An Open-Source Chat Model with
Parameter-Efficient Tuning on Self-Chat Data", arXiv:2304.01196) and UltraChat (Ding et al., "Enhancing Chat
Language Models by Scaling High-quality Instructional Conversations", arXiv:2305.14233): one model plays the
user, asked for the user's next message given the topic and the conversation so far, and ends the chat with
[END] when the user has nothing more to ask (Baize's "the human will stop the conversation when they have no
more question"); the assistant is asked the conversation as it is.

These texts are ours: UltraChat did not publish its user-simulator prompts, and Baize generates the whole
transcript in one request, which cannot stop per turn nor use another endpoint for the assistant. Written for
gpt-3.5-turbo-class chat models; the Chinese text is our translation.
"""

from __future__ import annotations

END = "[END]"

USER_SIMULATOR = {
    "en": (
        "You are playing the user in a conversation with an AI assistant about the topic: {topic}\n"
        "Ask questions a curious human would ask about the topic, one message at a time; follow up on the "
        "assistant's answers or move to related questions. Do not answer your own questions.\n"
        "{transcript}"
        "Write only the user's next message, without any label. If the user has no more questions, write "
        "exactly " + END + "."
    ),
    "zh": (
        "你在一段与 AI 助手的对话中扮演用户，话题是：{topic}\n"
        "像一个好奇的人那样就这个话题提问，每次一条消息；可以追问助手的回答，也可以转到相关的问题。不要自己回答问题。\n"
        "{transcript}"
        "只写出用户的下一条消息，不要加任何标签。如果用户没有更多问题了，只写 " + END + "。"
    ),
}

TRANSCRIPT = {
    "en": ("The conversation so far:\n", "[User] ", "[Assistant] ", "The conversation has not started yet.\n"),
    "zh": ("目前的对话：\n", "[用户] ", "[助手] ", "对话还没有开始。\n"),
}


def user_simulator_prompt(topic: str, turns: list[tuple[str, str]], lang: str) -> str:
    head, user, assistant, empty = TRANSCRIPT[lang]
    if turns:
        lines = "".join(f"{user if role == 'user' else assistant}{text}\n" for role, text in turns)
        transcript = head + lines + "\n"
    else:
        transcript = empty
    return USER_SIMULATOR[lang].replace("{topic}", topic).replace("{transcript}", transcript)


def ends_chat(text: str) -> bool:
    return text.strip().strip("\"'“”").upper().startswith(END)
