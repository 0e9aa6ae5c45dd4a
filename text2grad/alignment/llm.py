"""Optional pass: an OpenAI-compatible LLM names the good and poor phrases (as the paper used GPT-4o)."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request

from .proposals import GOOD, POOR, SpanProposal, _merge
from .quotes import _locate_quote, _Quote
from .text import looks_like_code

logger = logging.getLogger(__name__)


class LLMAlignerError(RuntimeError):
    """The endpoint failed or answered something that is not the JSON we asked for."""


_LLM_SYSTEM_PROMPT = (
    "You align natural-language feedback with a model's output. Given a task, the model's output and a "
    "critique, identify the exact phrases of the OUTPUT that the critique praises (good_spans) and the "
    "exact phrases it criticises (poor_spans). Copy each phrase verbatim from the output, as short as "
    "possible while still complete. Answer with JSON only, in the form "
    '{"critique": "<a concise restatement of the feedback>", "good_spans": ["..."], "poor_spans": ["..."]}.'
)


def _parse_llm_json(content: str) -> dict:
    """Pull the JSON object out of a chat answer: tolerate code fences and text around the object."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.S | re.I)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(content)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for m in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate[m.start() :])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise LLMAlignerError(f"no JSON object in the model's answer: {content[:200]!r}")


def _string_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise LLMAlignerError(f"expected a list of strings, got {type(value).__name__}")
    return [item for item in value if isinstance(item, str) and item.strip()]


class LLMAligner:
    """Dual-feedback span alignment through an OpenAI-compatible chat completions endpoint.

    The TEXT2GRAD paper asked GPT-4o for the critique and its good/poor spans as JSON; this does the same
    against any compatible server (OpenAI, vLLM, llama.cpp server...). Returned phrases are located in the
    output exactly, then fuzzily, like quoted phrases.

    Example:
        >>> aligner = LLMAligner(base_url="http://127.0.0.1:8000/v1", api_key="sk-...", model="gpt-4o")
        >>> aligner.align("def f(x): return x+1", "adds one instead of two")  # doctest: +SKIP
        [SpanProposal(start=10, end=20, polarity=-1, score=1.0, method='llm', evidence='return x+1')]
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _messages(self, output: str, critique: str, prompt: str | None) -> list[dict[str, str]]:
        parts = []
        if prompt:
            parts.append(f"TASK:\n{prompt}")
        parts.append(f"OUTPUT:\n{output}")
        parts.append(f"CRITIQUE:\n{critique}")
        return [
            {"role": "system", "content": _LLM_SYSTEM_PROMPT},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def request(self, output: str, critique: str, *, prompt: str | None = None) -> dict:
        """Call the endpoint and return the parsed ``{"critique", "good_spans", "poor_spans"}`` object."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": self._messages(output, critique, prompt),
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                payload = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise LLMAlignerError(f"{url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LLMAlignerError(f"could not reach {url}: {exc}") from exc
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise LLMAlignerError(f"not a chat completion response: {payload[:200]!r}") from exc
        if not isinstance(content, str):
            raise LLMAlignerError("chat completion content is not text")
        parsed = _parse_llm_json(content)
        return {
            "critique": parsed.get("critique") if isinstance(parsed.get("critique"), str) else "",
            "good_spans": _string_list(parsed.get("good_spans")),
            "poor_spans": _string_list(parsed.get("poor_spans")),
        }

    def align(self, output: str, critique: str, *, prompt: str | None = None) -> list[SpanProposal]:
        """Ask the endpoint for good/poor phrases and locate them in ``output``."""
        answer = self.request(output, critique, prompt=prompt)
        proposals = []
        for polarity, phrases in ((GOOD, answer["good_spans"]), (POOR, answer["poor_spans"])):
            for phrase in phrases:
                quote = _Quote(phrase, 0, 0, block=True)
                hits = _locate_quote(output, quote, "", is_code=looks_like_code(output))
                if not hits:
                    logger.info("LLM phrase not found in the output: %r", phrase[:80])
                for start, end, score, _method in hits:
                    proposals.append(SpanProposal(start, end, polarity, score, "llm", phrase))
        return _merge(proposals)
