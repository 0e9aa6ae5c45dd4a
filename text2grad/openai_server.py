"""An OpenAI-compatible HTTP server over the studio's generation engine (no Django: the caller supplies a
:class:`Backend` for keys, model names, loading and accounting).

Routes: ``GET /v1/models``, ``GET /v1/models/<id>``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(``stream`` as server-sent events ending in ``data: [DONE]``), ``GET /health``. Parameters: ``max_tokens``
(``max_completion_tokens``), ``temperature`` (0 is greedy), ``top_p``, ``stop`` (up to 4 strings), ``seed``,
``n``, ``logprobs`` (the sampled tokens' log-probabilities under the raw, untempered model, the quantity
the studio's PPO uses) with their most likely alternatives under the same distribution (chat:
``top_logprobs`` 0-20 beside ``logprobs: true``; completions: ``logprobs`` 0-5, OpenAI's shapes),
``stream_options.include_usage``. A client that disconnects cancels its request, streamed or not: its
engine requests leave before the next decoding step, freeing their slots (one still queued is never
prefilled). Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with the same
status codes: 401 bad key, 404 unknown model (or one the key may not use), 400 bad parameters or a prompt
longer than the context, 429 over the rate limit.

How it runs: a :class:`Scheduler` thread owns every model and steps one continuous-batching
:class:`~text2grad.inference.engine.Engine` per loaded model (at most ``max_models``, least recently used
dropped), so requests arriving from many HTTP threads decode together, each with its own seed. Each
request's tokens are handed to its HTTP thread through a queue as they are sampled, which streams them.

>>> server = make_server(backend, host="127.0.0.1", port=8001)  # doctest: +SKIP
>>> server.serve_forever()  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import json
import logging
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from text2grad.generation import encode_prompt
from text2grad.inference.engine import Completion, Engine, Request, request_seed

logger = logging.getLogger(__name__)

MAX_STOP = 4
MAX_N = 8
MAX_BODY_BYTES = 4 * 1024 * 1024
DISCONNECT_POLL_S = 0.2  # how often a waiting non-streaming request checks that its client is still there
ROLES = ("system", "user", "assistant", "developer")


class ApiError(Exception):
    """An error answered in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client of a non-streaming request disconnected before its answer; the request was cancelled."""

    def __init__(self, completions: list) -> None:
        super().__init__("client disconnected")
        self.completions = completions


class Backend(Protocol):
    """What the server asks of its host (the studio's is ``training/worker/endpoint.py``)."""

    tokenizer: Any  # the base tokenizer every served model shares (prompt lengths are checked before loading)
    context_length: int
    max_tokens: int  # the most new tokens one request may ask for

    def authenticate(self, api_key: str, ip: str | None) -> Any: ...  # a principal, or raise ApiError(401)
    def admit(self, principal: Any, ip: str | None) -> None: ...  # raise ApiError(429) over the limit
    def list_models(self, principal: Any) -> list[dict]: ...  # [{"id", "created", "owned_by"}]
    def resolve(self, principal: Any, model: str, ip: str | None) -> Hashable: ...  # or ApiError(404)
    def load(self, model_key: Hashable) -> tuple[Any, Any]: ...  # (model, tokenizer), in the scheduler
    def record(self, principal: Any, *, endpoint: str, model: str, usage: dict, ip: str | None) -> None: ...
    def release(self) -> None: ...  # the request is over (close per-thread resources)


# -- parameters ---------------------------------------------------------------------------------------
@dataclass
class Sampling:
    model: str
    prompts: list[list[int]]
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None
    n: int
    stream: bool
    include_usage: bool
    logprobs: bool
    top_logprobs: int = 0  # alternatives per token (chat's top_logprobs, completions' logprobs)
    top_k: int | None = None
    requested_max_tokens: bool = False


def _number(body: dict, name: str, default: float, low: float, high: float, *, low_open: bool = False):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"'{name}' must be a number", param=name, code="invalid_type")
    if value < low or value > high or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ApiError(400, f"'{name}' must be in {bound}; got {value}", param=name, code="invalid_value")
    return float(value)


def _integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer", param=name, code="invalid_type")
    if value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise ApiError(400, f"'{name}' must be at least {low}{upper}; got {value}", param=name)
    return value


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(
                400, f"messages[{index}] needs a role among {', '.join(ROLES)}", param=f"messages[{index}]"
            )
        content = message.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise ApiError(400, "only text content parts are supported", param=f"messages[{index}]")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{index}].content must be a string", param=f"messages[{index}]")
        role = "system" if message["role"] == "developer" else message["role"]
        clean.append({"role": role, "content": content})
    return clean


def parse_request(body: Any, *, chat: bool, tokenizer, context_length: int, max_tokens_cap: int) -> Sampling:
    """Check a completions (``chat=False``) or chat request; token ids of its prompt(s). ApiError(400)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required", param="model")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise ApiError(400, f"'{name}' is not supported by this server", param=name)
    if body.get("echo"):
        raise ApiError(400, "'echo' is not supported by this server", param="echo")
    if body.get("best_of") not in (None, 1):
        raise ApiError(400, "'best_of' is not supported by this server", param="best_of")
    if chat:
        prompts = [encode_prompt(tokenizer, _messages(body))]
        logprobs = body.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, bool):
            raise ApiError(400, "'logprobs' must be a boolean", param="logprobs")
        top_logprobs = _integer(body, "top_logprobs", 0, 20)
        if top_logprobs is not None and not logprobs:  # OpenAI's own rule
            raise ApiError(400, "'logprobs' must be true when 'top_logprobs' is used", param="logprobs")
        logprobs, top_logprobs = bool(logprobs), top_logprobs or 0
    else:
        prompt = body.get("prompt")
        texts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise ApiError(400, "'prompt' must be a non-empty string or list of strings", param="prompt")
        prompts = [list(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts]
        top_logprobs = _integer(body, "logprobs", 0, 5)
        logprobs, top_logprobs = top_logprobs is not None, top_logprobs or 0
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else (stop or [])
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"'stop' must be a string or a list of up to {MAX_STOP} strings", param="stop")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean", param="stream")
    requested = _integer(body, "max_completion_tokens", 1) if chat else None
    requested = requested if requested is not None else _integer(body, "max_tokens", 1)
    longest = max(len(p) for p in prompts)
    room = context_length - longest
    if room < 1 or (requested is not None and requested > room):
        asked = requested if requested is not None else 1
        raise ApiError(
            400,
            f"This model's maximum context length is {context_length} tokens. However, you requested "
            f"{longest + asked} tokens ({longest} in the prompt, {asked} in the completion). "
            "Please reduce the prompt or the completion length.",
            param="messages" if chat else "prompt",
            code="context_length_exceeded",
        )
    if requested is not None and requested > max_tokens_cap:
        raise ApiError(400, f"'max_tokens' is at most {max_tokens_cap} on this server", param="max_tokens")
    return Sampling(
        model=model,
        prompts=prompts,
        max_tokens=requested if requested is not None else min(max_tokens_cap, room),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stop=tuple(stop),
        seed=_integer(body, "seed", -(2**63), 2**63 - 1),
        n=_integer(body, "n", 1, MAX_N) or 1,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        top_k=_integer(body, "top_k", -1),  # vLLM's extension (extra_body); -1 or 0: off
        requested_max_tokens=requested is not None,
    )


def engine_requests(sampling: Sampling) -> list[Request]:
    """One engine request per (prompt, choice). Temperature 0 is greedy (top-k 1); a seed gives each choice
    its own stream, the same whatever else is decoding."""
    greedy = sampling.temperature == 0
    requests = []
    for prompt_index, prompt_ids in enumerate(sampling.prompts):
        for choice in range(sampling.n):
            index = prompt_index * sampling.n + choice
            requests.append(
                Request(
                    prompt_ids=list(prompt_ids),
                    max_new_tokens=sampling.max_tokens,
                    temperature=1.0 if greedy else sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=1 if greedy else sampling.top_k,
                    stop=sampling.stop,
                    seed=None if sampling.seed is None else request_seed(sampling.seed, index),
                    top_logprobs=sampling.top_logprobs,
                    tag=index,
                )
            )
    return requests


# -- the scheduler --------------------------------------------------------------------------------------
@dataclass
class Ticket:
    """What :meth:`Scheduler.submit` hands back: events arrive on ``events`` as
    ``("tokens", index, ids, logprobs, top_logprobs)``, ``("done", index, completion)`` or ``("error", ApiError)``."""

    events: queue.Queue
    jobs: list[_Job] = field(default_factory=list)
    cancelled: bool = False

    def cancel(self) -> None:
        """The client went away (any thread may call this): requests not yet handed to the engine never
        are, and the engine drops the others before its next step, waiting ones without a prefill."""
        self.cancelled = True


@dataclass
class _Job:
    completion: Completion
    ticket: Ticket
    sent: int = 0


class Scheduler:
    """One thread stepping one engine per loaded model; requests join and leave between steps."""

    def __init__(
        self, load: Callable[[Hashable], tuple[Any, Any]], *, max_batch: int = 16, max_models: int = 2
    ):
        self.load, self.max_batch, self.max_models = load, max_batch, max_models
        self._inbox: queue.Queue = queue.Queue()
        self._engines: OrderedDict[Hashable, Engine] = OrderedDict()
        self._jobs: dict[Hashable, list[_Job]] = {}
        self._thread = threading.Thread(target=self._loop, name="openai-scheduler", daemon=True)
        self._stopping = threading.Event()
        self.steps = 0  # engine steps taken, all models together (GET /health reports it)
        self.prefilled = 0  # prompts the engines prefilled, all models together (GET /health too)
        self.cpu_s = 0.0  # this thread's CPU seconds after its last step (the HTTP threads' are not in it)
        self._thread.start()

    def submit(self, model_key: Hashable, requests: list[Request]) -> Ticket:
        ticket = Ticket(events=queue.Queue())
        self._inbox.put((model_key, requests, ticket))
        return ticket

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout=10)

    def requests_in_flight(self) -> int:
        """Engine requests decoding or waiting for a slot, plus submissions not yet admitted (read from
        any thread: a moment's snapshot)."""
        return sum(len(jobs) for jobs in list(self._jobs.values())) + self._inbox.qsize()

    def _engine(self, model_key: Hashable) -> Engine:
        if model_key in self._engines:
            self._engines.move_to_end(model_key)
            return self._engines[model_key]
        idle = [k for k in self._engines if not self._jobs.get(k)]
        while len(self._engines) >= self.max_models and idle:
            key = idle.pop(0)
            del self._engines[key]
            self._jobs.pop(key, None)
        model, tokenizer = self.load(model_key)
        engine = Engine(model, tokenizer, max_batch=self.max_batch)
        self._engines[model_key] = engine
        return engine

    def _admit(self, item) -> None:
        model_key, requests, ticket = item
        if ticket.cancelled:  # its client left while it queued: no model load, no prefill
            return
        try:
            engine = self._engine(model_key)
            for request in requests:
                job = _Job(completion=engine.submit(request), ticket=ticket)
                ticket.jobs.append(job)
                self._jobs.setdefault(model_key, []).append(job)
        except Exception as exc:  # a version that fails to load answers its requests, never kills the loop
            logger.exception("Could not start requests on %s", model_key)
            ticket.events.put(
                ("error", ApiError(500, f"the model could not be loaded: {exc}", type="server_error"))
            )

    def _loop(self) -> None:
        while True:
            busy = any(self._jobs.values())
            try:  # idle: sleep until a request comes; busy: take what has come, then step
                item = self._inbox.get_nowait() if busy else self._inbox.get()
            except queue.Empty:
                item = False
            while item:
                self._admit(item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = False
            if item is None or self._stopping.is_set():
                return
            for model_key, jobs in list(self._jobs.items()):
                jobs = self._drop_cancelled(model_key, jobs)
                if jobs:
                    self._step(model_key, jobs)

    def _drop_cancelled(self, model_key: Hashable, jobs: list[_Job]) -> list[_Job]:
        """The jobs whose client is still there; the engine forgets the others before it steps (a waiting
        one is never prefilled, a running one frees its slot now)."""
        still, cancelled = [], []
        for job in jobs:  # one read of each flag: another thread may set it meanwhile
            (cancelled if job.ticket.cancelled else still).append(job)
        if not cancelled:
            return jobs
        self._engines[model_key].drop(job.completion for job in cancelled)
        self._jobs[model_key] = still
        return still

    def _step(self, model_key: Hashable, jobs: list[_Job]) -> None:
        engine = self._engines[model_key]
        try:
            before = engine.prefilled
            engine.step()
            self.steps += 1
            self.prefilled += engine.prefilled - before
            self.cpu_s = time.thread_time()
        except Exception as exc:
            logger.exception("A decoding step on %s failed", model_key)
            engine.cancel()
            for job in jobs:
                job.ticket.events.put(
                    ("error", ApiError(500, f"generation failed: {exc}", type="server_error"))
                )
            self._jobs[model_key] = []
            return
        still = []
        for job in jobs:
            completion = job.completion
            if len(completion.response_ids) > job.sent:
                ids = completion.response_ids[job.sent :]
                job.ticket.events.put(
                    (
                        "tokens",
                        completion.request.tag,
                        ids,
                        completion.logprobs[job.sent :],
                        completion.top_logprobs[job.sent :],
                    )
                )
                job.sent = len(completion.response_ids)
            if completion.finish_reason:
                job.ticket.events.put(("done", completion.request.tag, completion))
            else:
                still.append(job)
        self._jobs[model_key] = still


# -- responses ------------------------------------------------------------------------------------------
def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _byte_level_alphabet() -> dict[str, int]:
    """The characters byte-level BPE tokenizers (GPT-2's scheme, SmolLM2's, Llama 3's) write bytes as:
    printable Latin-1 bytes stand for themselves, every other byte takes the next code point from 256 up."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    alphabet = {chr(b): b for b in printable}
    others = [b for b in range(256) if b not in alphabet.values()]
    alphabet.update({chr(256 + n): b for n, b in enumerate(others)})
    return alphabet


_BYTE_LEVEL = _byte_level_alphabet()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte-fallback pieces


class TokenPieces:
    """Each token id's ``(text, raw bytes)`` as OpenAI's logprobs give them. A token that holds part of a
    multi-byte character (an emoji or CJK character split over tokens) keeps its real bytes, and its text
    writes the bytes that are not a whole character as ``\\xNN`` escapes (as OpenAI does), never as U+FFFD
    or a lone surrogate; joining the bytes of an answer's tokens gives its UTF-8 text.

    >>> TokenPieces(tokenizer)(token_id)  # doctest: +SKIP
    ('\\xf0\\x9f', b'\\xf0\\x9f')
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, tuple[str, bytes]] = {}  # at most the vocabulary

    def __call__(self, token_id: int) -> tuple[str, bytes]:
        piece = self._cache.get(token_id)
        if piece is None:
            piece = self._cache[token_id] = self._piece(token_id)
        return piece

    def _piece(self, token_id: int) -> tuple[str, bytes]:
        text = self.tokenizer.decode([token_id])
        if "\ufffd" not in text:  # a whole character or more: its text is its bytes
            return text, text.encode()
        raw = self._raw(token_id)
        if raw is None:  # a tokenizer of another kind: what it decodes to
            return text, text.encode()
        return raw.decode("utf-8", errors="backslashreplace"), raw

    def _raw(self, token_id: int) -> bytes | None:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str) or not piece:
            return None
        fallback = _BYTE_FALLBACK.fullmatch(piece)
        if fallback:
            return bytes([int(fallback.group(1), 16)])
        if all(c in _BYTE_LEVEL for c in piece):
            return bytes(_BYTE_LEVEL[c] for c in piece)
        return None


class _TextOffsets:
    """Completions' ``text_offset``: where each token starts in the answer's text, in characters; a token
    that ends inside a character moves the offset on only once the character is whole."""

    def __init__(self) -> None:
        self.chars = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def take(self, pieces: list[bytes]) -> list[int]:
        offsets = []
        for raw in pieces:
            offsets.append(self.chars)
            self.chars += len(self._decoder.decode(raw))
        return offsets


def _logprobs_block(
    pieces: TokenPieces,
    ids: list[int],
    logprobs: list[float],
    tops: list,
    *,
    chat: bool,
    offsets: _TextOffsets | None = None,
) -> dict:
    """OpenAI's logprobs object for these tokens: chat's ``{"content": [{token, logprob, bytes,
    top_logprobs}]}`` or completions' ``{tokens, token_logprobs, top_logprobs, text_offset}``; ``tops`` is
    each token's [(id, logprob)] alternatives (empty when none were asked for); ``offsets`` carries a
    streamed answer's text offsets from chunk to chunk."""
    tokens = [pieces(i) for i in ids]
    alternatives = [[(*pieces(i), lp) for i, lp in top] for top in tops] or [[] for _ in ids]
    if chat:
        return {
            "content": [
                {
                    "token": text,
                    "logprob": lp,
                    "bytes": list(raw),
                    "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a_raw)} for a, a_raw, b in top],
                }
                for (text, raw), lp, top in zip(tokens, logprobs, alternatives, strict=True)
            ],
            "refusal": None,
        }
    text_offset = (offsets or _TextOffsets()).take([raw for _, raw in tokens])
    # Completions key alternatives by text: two ids that decode alike keep the likelier (it comes first).
    top_dicts = [{a: b for a, _, b in reversed(top)} for top in alternatives] if tops else None
    return {
        "tokens": [text for text, _ in tokens],
        "token_logprobs": logprobs,
        "top_logprobs": top_dicts,
        "text_offset": text_offset,
    }


class _StreamText:
    """Turns a growing list of token ids into text deltas, holding back what a stop string might still
    cut and a half-decoded character."""

    def __init__(self, tokenizer, stop: tuple[str, ...]) -> None:
        self.tokenizer, self.stop = tokenizer, stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.ids: list[int] = []
        self.sent = ""

    def add(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            text = text[: min(cuts)]
        elif self.hold:
            text = text[: max(len(self.sent), len(text) - self.hold)]
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def finish(self, final_text: str) -> str:
        delta = final_text[len(self.sent) :] if final_text.startswith(self.sent) else ""
        self.sent = final_text
        return delta


# -- HTTP -----------------------------------------------------------------------------------------------
class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, backend: Backend, scheduler: Scheduler) -> None:
        super().__init__(address, Handler)
        self.backend, self.scheduler = backend, scheduler
        self.pieces = TokenPieces(backend.tokenizer)


def make_server(
    backend: Backend, *, host: str = "127.0.0.1", port: int = 8001, max_batch: int = 16, max_models: int = 2
) -> OpenAIServer:
    scheduler = Scheduler(backend.load, max_batch=max_batch, max_models=max_models)
    return OpenAIServer((host, port), backend, scheduler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer
    server_version = "text2grad-openai/1"

    def log_message(self, format: str, *args) -> None:
        logger.info("%s %s", self.client_address[0], format % args)

    # -- plumbing -----------------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"The body is not valid JSON: {exc}") from exc

    def _principal(self):
        header = self.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer t2g-...'.",
                code="invalid_api_key",
            )
        ip = self.client_address[0]
        principal = self.server.backend.authenticate(key.strip(), ip)
        self.server.backend.admit(principal, ip)
        return principal

    def _handle(self, route: Callable[[], None]) -> None:
        try:
            route()
        except ApiError as exc:
            self._send_json(exc.status, exc.body(), exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            logger.exception("The endpoint failed on %s", self.path)
            self._send_json(500, ApiError(500, "internal error", type="server_error").body())
        finally:
            self.server.backend.release()

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    # -- routes -------------------------------------------------------------------------------------------
    def _get(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            scheduler = self.server.scheduler
            self._send_json(
                200,
                {
                    "status": "ok",
                    "requests": scheduler.requests_in_flight(),
                    "steps": scheduler.steps,
                    "prefilled": scheduler.prefilled,
                    "scheduler_cpu_s": round(scheduler.cpu_s, 4),
                },
            )
            return
        if path == "/v1/models":
            principal = self._principal()
            models = self.server.backend.list_models(principal)
            self._send_json(200, {"object": "list", "data": [m | {"object": "model"} for m in models]})
            return
        if path.startswith("/v1/models/"):
            principal = self._principal()
            name = path[len("/v1/models/") :]
            for m in self.server.backend.list_models(principal):
                if m["id"] == name:
                    self._send_json(200, m | {"object": "model"})
                    return
            raise model_not_found(name)
        raise ApiError(404, f"Unknown path {path}", code="not_found")

    def _post(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            raise ApiError(404, f"Unknown path {path}", code="not_found")
        chat = path == "/v1/chat/completions"
        principal = self._principal()
        backend = self.server.backend
        sampling = parse_request(
            self._body(),
            chat=chat,
            tokenizer=backend.tokenizer,
            context_length=backend.context_length,
            max_tokens_cap=backend.max_tokens,
        )
        ip = self.client_address[0]
        model_key = backend.resolve(principal, sampling.model, ip)
        requests = engine_requests(sampling)
        ticket = self.server.scheduler.submit(model_key, requests)
        created, rid = int(time.time()), ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        prompt_tokens = sum(len(p) for p in sampling.prompts)

        def record(completions: list[Completion | None]) -> None:
            # Before the answer's last byte: a client that has its answer finds its use counted.
            usage = _usage(prompt_tokens, sum(len(c.response_ids) for c in completions if c))
            backend.record(principal, endpoint=path, model=sampling.model, usage=usage, ip=ip)

        if sampling.stream:
            self._stream(ticket, sampling, chat=chat, rid=rid, created=created, record=record)
        else:
            try:
                completions = self._wait(ticket, len(requests))
            except ClientGone as gone:
                record(gone.completions)  # what was decoded before the client left is counted
                return
            record(completions)
            self._send_json(200, self._response(completions, sampling, chat=chat, rid=rid, created=created))

    def _client_gone(self) -> bool:
        """Has the client closed its connection? (Readable with nothing to read is the peer's FIN; a
        pipelined next request is data, so a client that is still there is never taken for gone.)"""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _wait(self, ticket: Ticket, count: int) -> list[Completion | None]:
        """Every completion of a non-streaming request. A client that disconnects meanwhile cancels it:
        its requests leave before the next step, freeing their slots, and what was decoded is returned."""
        done: dict[int, Completion] = {}
        checked = time.monotonic()
        while len(done) < count:
            try:
                event = ticket.events.get(timeout=DISCONNECT_POLL_S)
            except queue.Empty:
                event = None
            # Checked by the clock, not only when no event came: a ticket's own events (one per step on a
            # fast machine) would otherwise keep a hung-up request decoding to its end.
            if time.monotonic() - checked >= DISCONNECT_POLL_S:
                checked = time.monotonic()
                if self._client_gone():
                    ticket.cancel()
                    self.close_connection = True
                    raise ClientGone([job.completion for job in ticket.jobs])
            if event is None:
                continue
            if event[0] == "error":
                raise event[1]
            if event[0] == "done":
                done[event[1]] = event[2]
        return [done[i] for i in range(count)]

    def _response(self, completions, sampling: Sampling, *, chat: bool, rid: str, created: int) -> dict:
        choices = []
        for index, c in enumerate(completions):
            lp = (
                _logprobs_block(self.server.pieces, c.response_ids, c.logprobs, c.top_logprobs, chat=chat)
                if sampling.logprobs
                else None
            )
            if chat:
                message = {"role": "assistant", "content": c.text, "refusal": None}
                choices.append(
                    {"index": index, "message": message, "logprobs": lp, "finish_reason": c.finish_reason}
                )
            else:
                choices.append(
                    {"index": index, "text": c.text, "logprobs": lp, "finish_reason": c.finish_reason}
                )
        return {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": sampling.model,
            "system_fingerprint": None,
            "choices": choices,
            "usage": _usage(
                sum(len(p) for p in sampling.prompts), sum(len(c.response_ids) for c in completions)
            ),
        }

    def _stream(
        self,
        ticket: Ticket,
        sampling: Sampling,
        *,
        chat: bool,
        rid: str,
        created: int,
        record: Callable[[list], None],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        tokenizer = self.server.backend.tokenizer
        count = len(sampling.prompts) * sampling.n
        texts = [_StreamText(tokenizer, sampling.stop) for _ in range(count)]
        offsets = [_TextOffsets() for _ in range(count)]  # completions' text_offset runs on across chunks
        done: dict[int, Completion] = {}
        base = {
            "id": rid,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": sampling.model,
            "system_fingerprint": None,
        }

        def send(payload: dict | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def choice(index: int, text: str, finish: str | None, lp=None) -> dict:
            if chat:
                return {"index": index, "delta": {"content": text}, "logprobs": lp, "finish_reason": finish}
            return {"index": index, "text": text, "logprobs": lp, "finish_reason": finish}

        try:
            if chat:
                for index in range(count):
                    send(base | {"choices": [{"index": index, "delta": {"role": "assistant", "content": ""},
                                              "logprobs": None, "finish_reason": None}]})  # fmt: skip
            while len(done) < count:
                event = ticket.events.get()
                if event[0] == "error":
                    send({"error": event[1].body()["error"]})
                    break
                if event[0] == "tokens":
                    _, index, ids, logprobs, tops = event
                    delta = texts[index].add(ids)
                    lp = None
                    if sampling.logprobs:
                        lp = _logprobs_block(
                            self.server.pieces, ids, logprobs, tops, chat=chat, offsets=offsets[index]
                        )
                    if delta or lp:
                        send(base | {"choices": [choice(index, delta, None, lp)]})
                else:
                    _, index, completion = event
                    done[index] = completion
                    send(
                        base
                        | {
                            "choices": [
                                choice(index, texts[index].finish(completion.text), completion.finish_reason)
                            ]
                        }
                    )
            if sampling.include_usage:
                completions = list(done.values())
                usage = _usage(
                    sum(len(p) for p in sampling.prompts), sum(len(c.response_ids) for c in completions)
                )
                send(base | {"choices": [], "usage": usage})
            record([done.get(i) for i in range(count)])
            send("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            ticket.cancel()
            record([job.completion for job in ticket.jobs])  # every token decoded, streamed or not


def model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


__all__ = [
    "ApiError",
    "Backend",
    "Handler",
    "OpenAIServer",
    "Sampling",
    "Scheduler",
    "Ticket",
    "TokenPieces",
    "engine_requests",
    "make_server",
    "model_not_found",
    "parse_request",
]
