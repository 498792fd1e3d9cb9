"""LLMDouble: a TEST DOUBLE of a remote chat model — a local OpenAI-compatible server on 127.0.0.1.

It serves `POST /v1/chat/completions` with deterministic answers (a function
of the request body only) in the forms instructgen's prompts ask for:
Alpaca's numbered `###` text or {"tasks": [...]}, Self-Instruct's
`Task N:` lines or {"instructions": [...]}, Yes/No classification, and
instances. It is not a model: the content is assembled from word lists.
It also plays Evol-Instruct (evolutions, with planted failures of each kind the elimination rules exist for:
see `_evolve`), the equality judge, an assistant answering any other prompt, and MT-bench's pairwise judge
(fair, position-biased, tie or mute per pair of answers: `_pairwise`), and a self-chat user simulator
(talkative, brief, mute or echoing per topic: `_simulated_user`).

Fault injection, decided per distinct request by a hash (so reruns see the same faults):
  transient (the first `transient_times` attempts of a request only; a large value makes them permanent):
    "429" (with Retry-After: `retry_after`), "500", "slow" (answers after `slow_seconds`),
    the broken 200 answers of a bad proxy or server: "html" (an HTML error page), "bytes" (garbage bytes
    labelled application/json), "truncated" (Content-Length larger than what is sent, then the connection
    closes), "no_choices" (`choices: []`), "null_content" (`content: null`), "empty_content" (`content: ""`),
    "trickle" (a valid body sent one byte every `trickle_interval` seconds), "echo_auth" (an HTML page that
    quotes the request's Authorization header, as some proxies do);
  permanent: "garbage" (text nothing can parse), "length" (cut mid-item, finish_reason "length"),
    "quota" (HTTP 429 with OpenAI's `insufficient_quota` error body: the account cannot pay, waiting never helps);
  reject_response_format=True: 400 to any request carrying response_format.

`hits` counts every request per key, `served` every complete, well-formed 200 answer per key, `faulted`
every broken 200 answer per key (key = SHA-256 of the canonical request body); `GET /_double/stats`
returns them. Run standalone: `python tests/llm_double.py --latency 0.2` prints `PORT <n>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EN = {
    "verb": ["Summarize", "Explain", "Describe", "Compare", "List", "Suggest", "Rewrite", "Evaluate", "Outline",
             "Classify", "Critique", "Plan", "Translate", "Simplify", "Argue", "Estimate", "Predict", "Rank"],
    "adj": ["historical", "practical", "surprising", "common", "overlooked", "ethical", "economic", "creative",
            "technical", "seasonal", "regional", "modern", "ancient", "urban", "rural", "domestic", "scientific"],
    "noun": ["habits", "risks", "benefits", "mistakes", "traditions", "strategies", "arguments", "methods", "myths",
             "trends", "rules", "tools", "questions", "decisions", "recipes", "stories", "lessons", "patterns"],
    "topic": ["beekeeping", "chess openings", "tax law", "volcanoes", "jazz history", "bicycle repair", "sleep",
              "marathon training", "origami", "cloud storage", "bird migration", "urban gardening", "poetry",
              "negotiation", "solar panels", "medieval castles", "sourdough", "public speaking", "glaciers",
              "board games", "vaccines", "typography", "coral reefs", "budgeting", "robotics", "wine regions"],
    "audience": ["a child", "a new employee", "a retiree", "a skeptical investor", "a tourist", "a nurse",
                 "a high school class", "a farmer", "a software engineer", "a novelist", "a city council"],
}
ZH = {
    "verb": ["总结", "解释", "描述", "比较", "列举", "建议", "改写", "评价", "概述", "分析", "规划", "预测", "归纳"],
    "adj": ["历史上", "实用的", "常见的", "被忽视的", "经济方面的", "有创意的", "技术性的", "季节性的", "现代的",
            "古代的", "城市里的", "乡村的", "科学的"],
    "noun": ["习惯", "风险", "好处", "误区", "传统", "策略", "方法", "趋势", "规则", "工具", "问题", "故事", "经验"],
    "topic": ["养蜂", "象棋开局", "税法", "火山", "爵士乐史", "自行车维修", "睡眠", "马拉松训练", "折纸", "云存储",
              "候鸟迁徙", "城市园艺", "诗歌", "谈判", "太阳能板", "中世纪城堡", "酸面包", "公开演讲", "冰川", "桌游",
              "疫苗", "字体设计", "珊瑚礁", "家庭预算", "机器人", "茶叶产区"],
    "audience": ["小学生", "新员工", "退休老人", "谨慎的投资者", "游客", "护士", "高中班级", "农民", "软件工程师",
                 "小说家", "市议会"],
}


TRANSIENT = ("429", "500", "slow", "html", "bytes", "truncated", "no_choices", "null_content", "empty_content",
             "trickle", "echo_auth")
BROKEN_200 = ("html", "bytes", "truncated", "no_choices", "null_content", "empty_content", "trickle", "echo_auth")
HTML_ERROR_PAGE = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
                   "<p>The upstream server sent an invalid response. (test double proxy)</p></body></html>")
SORRY_MARK, SORRY_MARK_ZH = " Use only facts that nobody can know.", "只用没有人能知道的事实。"
STOP_MARK, STOP_MARK_ZH = " Answer with filler words alone.", "只用虚词回答。"
GARBAGE_BYTES = b"\x00\xff\xfe\x89PNG\r\n\x1a\n garbage \xc3\x28 {\"choices\": [oops"


@dataclass
class Reply:
    status: int
    payload: dict | bytes  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delivery: str | None = None  # None: at once; "truncated": half, then hang up; "trickle": a byte at a time
    broken: bool = False  # a 200 that is not a usable chat completion


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 resets connections when many clients connect at once


def request_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LLMDouble:
    """The server; use as a context manager (`with LLMDouble() as d: d.base_url`)."""

    def __init__(self, latency: float = 0.0, faults: dict[str, float] | None = None, transient_times: int = 1,
                 retry_after: str = "0", slow_seconds: float = 2.0, reject_response_format: bool = False,
                 port: int = 0, trickle_interval: float = 1.0, planted_rate: float = 0.06):
        self.latency = latency
        self.faults = faults or {}
        self.transient_times = transient_times
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.reject_response_format = reject_response_format
        self.trickle_interval = trickle_interval
        self.planted_rate = planted_rate  # share of each planted bad kind (evolutions, judge verdicts)
        self.planted: dict[tuple[str, str], str] = {}  # (given, evolved) -> good | copy | same | sorry | stop
        self.planted_judge: dict[tuple[str, str], str] = {}  # (answer, answer) -> fair | biased | tie | mute
        self.planted_chat: dict[str, str] = {}  # topic -> talkative | brief | mute | echo
        self.hits: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.active = 0  # requests being answered right now
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms a response
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                if self.path.rstrip("/") == "/_double/stats":
                    with double._lock:
                        doc = {"hits": dict(double.hits), "served": dict(double.served),
                               "faulted": dict(double.faulted), "statuses": dict(double.statuses)}
                    self._send(Reply(200, doc))
                else:
                    self._send(Reply(404, {"error": {"message": "not found"}}))

            def do_POST(self):
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    data = self.rfile.read(length)
                    if len(data) < length:
                        raise ConnectionError("the body was cut short")
                    body = json.loads(data or b"{}")
                except (ConnectionError, ValueError):  # the client went away (killed, cancelled) mid-request
                    self.close_connection = True
                    return
                if not self.path.endswith("/chat/completions"):
                    self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                    return
                with double._lock:
                    double.active += 1
                try:
                    reply = double.answer(body, dict(self.headers))
                    if self._send(reply) and reply.status == 200:
                        with double._lock:
                            (double.faulted if reply.broken else double.served)[request_key(body)] += 1
                finally:
                    with double._lock:
                        double.active -= 1

            def _send(self, reply: "Reply") -> bool:
                data = reply.payload if isinstance(reply.payload, bytes) else \
                    json.dumps(reply.payload, ensure_ascii=False).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.delivery == "truncated":  # promise the whole body, send half, hang up
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return True
                    if reply.delivery == "trickle":
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(double.trickle_interval)
                        return True
                    self.wfile.write(data)
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return False

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "LLMDouble":
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_idle(self, limit: float = 30.0) -> None:
        """Until no request is being answered (e.g. those of a killed client), at most `limit` seconds."""
        deadline = time.monotonic() + limit
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    # -- answering --------------------------------------------------------------------------------
    def answer(self, body: dict, headers: dict[str, str] | None = None) -> "Reply":
        key = request_key(body)
        with self._lock:
            self.hits[key] += 1
            attempt = self.hits[key]
        if self.latency:
            time.sleep(self.latency)
        if self.reject_response_format and "response_format" in body:
            return self._status(400, "response_format is not supported by this server")
        fault = self._fault(key)
        transient = fault if fault in TRANSIENT and attempt <= self.transient_times else None
        if fault == "quota":
            return self._status(429, "You exceeded your current quota, please check your plan and billing details.",
                                {"Retry-After": self.retry_after}, code="insufficient_quota")
        if transient == "429":
            return self._status(429, "rate limited (test double)", {"Retry-After": self.retry_after})
        if transient == "500":
            return self._status(500, "internal error (test double)")
        if transient == "slow":
            time.sleep(self.slow_seconds)
        rng = random.Random(key)
        text, finish = self.compose(body, rng), "stop"
        if fault == "garbage":
            text = "Sorry!! <<<%%% the quick brown fox %%%>>> nothing useful here"
        elif fault == "length":
            text, finish = text[: max(1, int(len(text) * 0.8))], "length"
        with self._lock:
            self.statuses["200"] += 1
        prompt = "".join(m.get("content", "") for m in body.get("messages", []))
        doc = {
            "id": "chatcmpl-double-" + key[:12], "object": "chat.completion", "created": 0,
            "model": body.get("model", "double"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(text) // 4 + 1,
                      "total_tokens": len(prompt) // 4 + len(text) // 4 + 2},
        }
        return self._broken(transient, doc, headers or {}) if transient in BROKEN_200 else Reply(200, doc)

    @staticmethod
    def _broken(fault: str, doc: dict, headers: dict[str, str]) -> "Reply":
        if fault == "html":
            return Reply(200, HTML_ERROR_PAGE.encode(), content_type="text/html", broken=True)
        if fault == "echo_auth":
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            page = HTML_ERROR_PAGE.replace("</body>", f"<pre>Authorization: {auth}</pre></body>")
            return Reply(200, page.encode(), content_type="text/html", broken=True)
        if fault == "bytes":
            return Reply(200, GARBAGE_BYTES, broken=True)
        if fault == "no_choices":
            return Reply(200, {**doc, "choices": []}, broken=True)
        if fault in ("null_content", "empty_content"):
            choice = doc["choices"][0]
            message = {**choice["message"], "content": None if fault == "null_content" else ""}
            return Reply(200, {**doc, "choices": [{**choice, "message": message}]}, broken=True)
        return Reply(200, doc, delivery=fault, broken=True)  # truncated, trickle

    def _status(self, status: int, message: str, headers: dict | None = None, code: str | None = None) -> "Reply":
        with self._lock:
            self.statuses[str(status)] += 1
        error = {"message": message, "type": code or "test_double", "code": code or status}
        return Reply(status, {"error": error}, headers or {})

    def _fault(self, key: str) -> str | None:
        x = int(key[:8], 16) / 0xFFFFFFFF
        edge = 0.0
        for kind, rate in self.faults.items():
            edge += rate
            if x < edge:
                return kind
        return None

    def compose(self, body: dict, rng: random.Random) -> str:
        prompt = body["messages"][-1]["content"]
        as_json = "response_format" in body
        zh = bool(re.search(r"[\u4e00-\u9fff]{4}", prompt))
        if "do you think they are equal" in prompt or "你认为它们是否相同" in prompt:
            return self._equality(prompt)
        if "Prompt Rewriter" in prompt or "Prompt Creator" in prompt or "提示改写者" in prompt or "提示创作者" in prompt:
            return self._evolve(prompt, rng, zh)
        if prompt.startswith("[User Question]"):
            return self._pairwise(prompt)
        if "You are playing the user" in prompt or "扮演用户" in prompt:
            return self._simulated_user(prompt, rng, zh)
        if self._echoing_chat(body["messages"]):
            return prompt  # the assistant repeats the question: junk (the filter's echo rule)
        if "Is it classification?" in prompt or "是否分类任务" in prompt or '"is_classification"' in prompt:
            task = re.findall(r"(?m)^(?:Task: |任务：)(.*)$", prompt)[-1]
            yes = any(w in task for w in ("Classify", "classify", "分类", "判断"))
            if as_json:
                return json.dumps({"is_classification": yes})
            return ("是" if yes else "否") if zh else ("Yes" if yes else "No")
        if '"instances"' in prompt or "Example 1" in prompt or "示例 1" in prompt:
            return self._instances(rng, zh, as_json, "Class label" in prompt or "类别标签" in prompt
                                   or '{"output"' in prompt)
        if "Task 1:" in prompt or "任务 1：" in prompt or '"instructions"' in prompt:
            items = [self._instruction(rng, zh) for _ in range(8)]
            if as_json:
                return json.dumps({"instructions": items}, ensure_ascii=False)
            return "\n".join(f"{'任务' if zh else 'Task'} {9 + i}{'：' if zh else ': '}{t}" for i, t in enumerate(items))
        if re.search(r"\d+\s*(?:个新的任务|new tasks)", prompt) or '"tasks"' in prompt:
            return self._alpaca(prompt, rng, zh, as_json)
        return self._answer(prompt, rng, zh)

    # -- Evol-Instruct, answers and the pairwise judge ---------------------------------------------
    def _evolve(self, prompt: str, rng: random.Random, zh: bool) -> str:
        """An evolution of the given prompt; some are planted failures, one of each kind an elimination rule
        exists for (`planted[(given, evolved)] = kind`): copy (scaffolding copied), same (no information gain),
        sorry (its answer is a short apology), stop (its answer is only stop words)."""
        m = re.search(r"(?s)#(?:The Given Prompt|Given Prompt|给定提示)#[:：] ?\n (.*?) \n#", prompt)
        given = m.group(1) if m else "?"
        w = ZH if zh else EN
        if "Prompt Creator" in prompt or "提示创作者" in prompt:
            evolved = self._instruction(rng, zh)
        elif zh:
            evolved = (f"{given}另外，请{rng.choice(w['verb'])}{rng.choice(w['topic'])}的{rng.choice(w['noun'])}，"
                       f"并考虑{rng.choice(w['adj'])}因素，第{rng.randrange(2, 99)}条。")
        else:
            evolved = (f"{given} Also {rng.choice(w['verb']).lower()} the {rng.choice(w['adj'])} "
                       f"{rng.choice(w['noun'])} of {rng.choice(w['topic'])}, in {rng.randrange(2, 99)} steps.")
        roll = rng.random()
        kind, text = "good", evolved
        if roll < self.planted_rate:
            kind, text = "copy", ("#改写后的提示#：" if zh else "#Rewritten Prompt#:\n") + evolved
        elif roll < 2 * self.planted_rate:
            kind, text = "same", given
        elif roll < 3 * self.planted_rate:
            kind, text = "sorry", evolved + (SORRY_MARK_ZH if zh else SORRY_MARK)
        elif roll < 4 * self.planted_rate:
            kind, text = "stop", evolved + (STOP_MARK_ZH if zh else STOP_MARK)
        with self._lock:
            self.planted[(given.strip(), text.strip())] = kind
        return text

    def _equality(self, prompt: str) -> str:
        m = re.search(r"(?s)(?:The First Prompt: |第一条提示：)(.*)\n(?:The Second Prompt: |第二条提示：)(.*)\n", prompt)
        same = m is not None and " ".join(m.group(1).split()) == " ".join(m.group(2).split())
        return "Equal" if same else "Not Equal"

    def _answer(self, prompt: str, rng: random.Random, zh: bool) -> str:
        if SORRY_MARK.strip() in prompt:
            return "Sorry, I cannot answer that: nobody knows those facts."
        if SORRY_MARK_ZH.strip() in prompt:
            return "抱歉，我无法回答这个问题。"
        if STOP_MARK.strip() in prompt:
            return "It is what it is, and so on... and on!"
        if STOP_MARK_ZH.strip() in prompt:
            return "的，了，是在和……"
        w = ZH if zh else EN
        n = rng.randrange(3, 9)
        if zh:
            return "".join(f"第{k}点：{rng.choice(w['topic'])}的{rng.choice(w['noun'])}值得{rng.choice(w['audience'])}"
                           f"注意，{rng.choice(w['adj'])}{rng.choice(w['noun'])}。" for k in range(1, n + 1))
        return " ".join(f"{k}. {rng.choice(w['verb'])} the {rng.choice(w['adj'])} {rng.choice(w['noun'])} of "
                        f"{rng.choice(w['topic'])} with {rng.choice(w['audience'])} in mind." for k in range(1, n + 1))

    def _simulated_user(self, prompt: str, rng: random.Random, zh: bool) -> str:
        """The next user message of a self-chat, or [END]. Per topic the double is one of: talkative (never ends),
        brief (ends after 1-2 turns), mute (ends at once), or echo (never ends, and from turn 2 on the assistant
        answers by repeating the question: junk the filter's echo rule cuts); `planted_chat[topic]` records which."""
        topic = re.search(r"(?:about the topic: |话题是：)(.*)", prompt).group(1).strip()
        done = len(re.findall(r"(?m)^\[(?:User|用户)\] ", prompt))
        roll = random.Random(hashlib.sha256(topic.encode()).hexdigest()).random()
        kind = ("mute" if roll < self.planted_rate else "echo" if roll < 2 * self.planted_rate
                else "brief" if roll < 0.5 else "talkative")
        with self._lock:
            self.planted_chat[topic] = kind
        if kind == "mute" or (kind == "brief" and done >= 1 + len(topic) % 2):
            return "[END]"
        w = ZH if zh else EN
        if zh:
            return f"关于{topic}，{rng.choice(w['adj'])}{rng.choice(w['noun'])}有哪些？（第{done + 1}问）"
        return (f"About {topic}: what are the {rng.choice(w['adj'])} {rng.choice(w['noun'])} "
                f"a {rng.choice(['beginner', 'expert', 'student'])} should know? (question {done + 1})")

    def _echoing_chat(self, messages: list[dict]) -> bool:
        """An assistant turn after the first of a self-chat whose topic the double plays as "echo"."""
        if len(messages) < 3 or messages[0].get("role") != "user":
            return False
        m = re.match(r"(?:About (.*?): what|关于(.*?)，)", messages[0].get("content", ""))
        topic = m and (m.group(1) or m.group(2))
        with self._lock:
            return bool(topic) and self.planted_chat.get(topic) == "echo"

    def _pairwise(self, prompt: str) -> str:
        """MT-bench's pairwise verdict. Per pair of answers (either order) the double is one of: fair (prefers
        the longer answer, then the larger), biased (always [[A]]: position bias), tie ([[C]]) or mute (no
        verdict); `planted_judge[(shorter, longer)]` records which."""
        m = re.search(r"(?s)\[The Start of Assistant A's Answer\]\n(.*)\n\[The End of Assistant A's Answer\].*"
                      r"\[The Start of Assistant B's Answer\]\n(.*)\n\[The End of Assistant B's Answer\]", prompt)
        a, b = (m.group(1), m.group(2)) if m else ("", "")
        pair = tuple(sorted((a, b), key=lambda t: (len(t), t)))
        roll = random.Random(hashlib.sha256("\x00".join(pair).encode()).hexdigest()).random()
        kind = ("biased" if roll < self.planted_rate else "tie" if roll < 2 * self.planted_rate
                else "mute" if roll < 3 * self.planted_rate else "fair")
        with self._lock:
            self.planted_judge[pair] = kind
        if kind == "mute":
            return "Both answers have merits; I cannot decide."
        verdict = {"biased": "A", "tie": "C"}.get(kind) or ("A" if a == pair[1] else "B")
        return f"Assistant {verdict} follows the question more closely. [[{verdict}]]"

    def _instruction(self, rng: random.Random, zh: bool) -> str:
        w = ZH if zh else EN
        roll = rng.random()
        if roll < 0.05:
            return "画一张图片" if zh else "Draw a picture of your favourite animal."
        if roll < 0.08:
            return "写诗" if zh else "Do it now."
        if zh:
            return (f"请{rng.choice(w['verb'])}{rng.choice(w['adj'])}{rng.choice(w['topic'])}"
                    f"{rng.choice(w['noun'])}，讲给{rng.choice(w['audience'])}听。")
        return (f"{rng.choice(w['verb'])} the {rng.choice(w['adj'])} {rng.choice(w['noun'])} of "
                f"{rng.choice(w['topic'])} for {rng.choice(w['audience'])}.")

    def _alpaca(self, prompt: str, rng: random.Random, zh: bool, as_json: bool) -> str:
        m = re.search(r"(\d+)\s*(?:个新的任务|new tasks)", prompt)
        count = int(m.group(1)) if m else 20
        shown = re.findall(r"(?m)^\d+\. (?:Instruction: |指令：)(.*)$", prompt)
        tasks = []
        for i in range(count):
            if shown and rng.random() < 0.1:  # a copy of an example: the diversity filter must catch it
                instruction = shown[0]
            else:
                instruction = self._instruction(rng, zh)
            inp = "" if rng.random() < 0.4 else f"{rng.choice((ZH if zh else EN)['topic'])} #{rng.randrange(1000)}"
            out = (f"关于{rng.choice(ZH['topic'])}的回答，共{rng.randrange(3, 9)}点。" if zh
                   else f"An answer about {rng.choice(EN['topic'])} in {rng.randrange(3, 9)} points.")
            tasks.append((instruction, inp, out))
        if as_json:
            return json.dumps({"tasks": [{"instruction": a, "input": b, "output": c} for a, b, c in tasks]},
                              ensure_ascii=False)
        start = len(shown) + 1
        blocks = []
        for n, (a, b, c) in enumerate(tasks, start):
            if zh:
                blocks.append(f"{n}. 指令：{a}\n{n}. 输入：\n{b or '<无输入>'}\n{n}. 输出：\n{c}")
            else:
                blocks.append(f"{n}. Instruction: {a}\n{n}. Input:\n{b or '<noinput>'}\n{n}. Output:\n{c}")
        return "\n###\n".join(blocks)

    def _instances(self, rng: random.Random, zh: bool, as_json: bool, output_first: bool) -> str:
        w = ZH if zh else EN
        rows = []
        for i in range(3):
            inp = f"{rng.choice(w['topic'])} {rng.randrange(100)}"
            out = (["正面", "负面", "中性"][i] if zh else ["positive", "negative", "neutral"][i]) if output_first \
                else f"{rng.choice(w['verb'])} {rng.choice(w['noun'])} {rng.randrange(100)}"
            rows.append((inp, out))
        if rng.random() < 0.3:
            rows.append((rows[0][0], rows[0][0]))  # input == output: Self-Instruct's clean-up drops it
        if as_json:
            return json.dumps({"instances": [{"input": a, "output": b} for a, b in rows]}, ensure_ascii=False)
        ex, inp_l, out_l, lab, c = (("示例", "输入", "输出", "类别标签", "：") if zh
                                    else ("Example", "Input", "Output", "Class label", ": "))
        if output_first:
            return "\n\n".join(f"{ex} {n}\n{lab}{c}{b}\n{inp_l}{c}{a}" for n, (a, b) in enumerate(rows, 1))
        return "\n\n".join(f"{ex} {n}\n{inp_l}{c}{a}\n{out_l}{c}{b}" for n, (a, b) in enumerate(rows, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the LLM test double until killed.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--reject-response-format", action="store_true")
    ap.add_argument("--faults", default="", help="kind=rate,... e.g. 429=0.1,500=0.1,html=0.05")
    ap.add_argument("--transient-times", type=int, default=1, help="attempts of a request a transient fault hits")
    args = ap.parse_args()
    faults = {k: float(v) for k, v in (p.split("=") for p in args.faults.split(",") if p)}
    double = LLMDouble(latency=args.latency, faults=faults, reject_response_format=args.reject_response_format,
                       port=args.port, transient_times=args.transient_times)
    print(f"PORT {double.port}", flush=True)
    try:
        double.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
