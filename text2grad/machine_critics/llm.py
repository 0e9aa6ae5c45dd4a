"""The LLM critic: an OpenAI-compatible chat endpoint writes the paper's JSON critique.

TEXT2GRAD's annotations were written by GPT-4o as a critique with good and poor spans quoted from the
output. This critic asks any OpenAI-compatible server (a hosted API, vLLM, Ollama, llama.cpp's server)
for ``{"critique", "rating", "good_spans", "poor_spans"}``, locates each quoted phrase with the aligner
and reports, rather than raises, everything that went wrong: an unreachable server, an answer that is
not JSON, missing keys, a phrase that is not in the output (``status`` ``partial`` or ``failed``).

The API key is never a setting (settings are recorded with every run): ``api_key_env`` names the
environment variable that holds it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from types import MappingProxyType

from .answers import close_truncated_json, parse_json_object, phrase_spans, read_rating
from .base import GOOD, POOR, Critic, CriticItem, CriticResult, Evidence

SYSTEM_PROMPT = (
    "You are a meticulous reviewer of a model's answer to a task. Write a concise critique of the OUTPUT: "
    "what is right, what is wrong or missing, and why. Then quote the exact phrases of the OUTPUT that are "
    "good (good_spans) and the exact phrases that are poor (poor_spans): copy each verbatim from the "
    "output, as short as possible while still complete, and give the reason for each. Rate the output "
    "from 1 (bad) to 5 (excellent). Answer with JSON only, in the form "
    '{"critique": "...", "rating": 3, "good_spans": [{"phrase": "...", "reason": "..."}], '
    '"poor_spans": [{"phrase": "...", "reason": "..."}]}.'
)


def build_messages(item: CriticItem) -> list[dict[str, str]]:
    """The chat messages for one item: the task, the reference or tests when the item has them, the output."""
    parts = [f"TASK:\n{item.prompt}"]
    reference = item.metadata.get("reference")
    if isinstance(reference, str) and reference.strip():
        parts.append(f"REFERENCE:\n{reference}")
    test = item.metadata.get("test")
    if isinstance(test, str) and test.strip():
        parts.append(f"UNIT TESTS:\n{test}")
    parts.append(f"OUTPUT:\n{item.output}")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]


def read_answer(critic: Critic, output: str, content: str) -> CriticResult:
    """A ``CriticResult`` from the model's answer text; malformed or partial answers are reported.

    Example:
        >>> critic = LLMCritic(base_url="http://127.0.0.1:8000/v1", model="m")
        >>> result = read_answer(critic, "x = 1 / 0", '{"critique": "Divides by zero.", "poor_spans": ["1 / 0"]}')
        >>> [(s.label, s.start, s.end) for s in result.spans], result.status
        ([('poor', 4, 9)], 'ok')
    """
    raw = Evidence("llm-quote", content[:2000], "raw answer")
    answer = parse_json_object(content)
    problems: list[str] = []
    if answer is None:
        answer = close_truncated_json(content)
        if answer is not None:
            problems.append("the answer was cut off; read what arrived")
    if answer is None:
        text = "The LLM's answer was not the JSON asked for; no critique was recorded."
        return critic.result(
            text, None, evidence=[raw], problems=[f"no JSON object in: {content[:200]!r}"], status="failed"
        )
    critique = answer.get("critique")
    if not isinstance(critique, str) or not critique.strip():
        problems.append("the answer has no 'critique' text")
        critique = ""
    rating = read_rating(answer.get("rating"), problems)
    spans = []
    for label, key in ((GOOD, "good_spans"), (POOR, "poor_spans")):
        spans += phrase_spans(output, answer.get(key), label, "llm-quote", problems, f"LLM: {label} phrase.")
    if not critique and not spans:
        return critic.result(
            "The LLM's answer held no critique and no spans.",
            rating,
            evidence=[raw],
            problems=problems,
            status="failed",
        )
    return critic.result(critique, rating, spans, [raw], problems, "partial" if problems else "ok")


class LLMCritic(Critic):
    """Asks an OpenAI-compatible ``/chat/completions`` endpoint for the paper's JSON critique.

    Example:
        >>> critic = LLMCritic(base_url="http://127.0.0.1:8000/v1", model="qwen2.5-7b-instruct")
        >>> critic.critique(CriticItem("Add 2 and 2.", "2 + 2 = 5"))  # doctest: +SKIP
        CriticResult(..., critique='The sum is wrong: 2 + 2 is 4.', rating=1, spans=(SpanCritique(...'5'...),))
    """

    name = "llm"
    version = "1"
    defaults = MappingProxyType(
        {
            "base_url": "http://127.0.0.1:8000/v1",
            "model": "",
            "api_key_env": "",
            "temperature": 0.0,
            "max_tokens": 1024,
            "timeout": 60.0,
            "json_mode": False,
        }
    )

    def request_body(self, item: CriticItem) -> dict:
        body = {
            "model": self.settings["model"],
            "messages": build_messages(item),
            "temperature": self.settings["temperature"],
            "max_tokens": self.settings["max_tokens"],
        }
        if self.settings["json_mode"]:
            body["response_format"] = {"type": "json_object"}
        return body

    def ask(self, item: CriticItem) -> str:
        """The model's answer text; raises ``RuntimeError`` with the reason when there is none."""
        base_url = str(self.settings["base_url"])
        if not base_url.startswith(("http://", "https://")):
            raise RuntimeError(f"base_url must be an http(s) URL, got {base_url!r}")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key_env = self.settings["api_key_env"]
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        url = base_url.rstrip("/") + "/chat/completions"
        data = json.dumps(self.request_body(item)).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=float(self.settings["timeout"])) as response:
                payload = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise RuntimeError(f"{url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise RuntimeError(f"could not reach {url}: {exc}") from exc
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"not a chat completion response: {payload[:200]!r}") from exc
        if not isinstance(content, str):
            raise RuntimeError("the chat completion's content is not text")
        return content

    def critique(self, item: CriticItem) -> CriticResult:
        try:
            content = self.ask(item)
        except RuntimeError as exc:
            text = f"The LLM critic got no answer: {exc}"
            return self.result(
                text,
                None,
                evidence=[Evidence("critic-error", str(exc))],
                problems=[str(exc)],
                status="failed",
            )
        return read_answer(self, item.output, content)
