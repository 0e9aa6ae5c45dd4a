"""The record a machine critic returns, and the record of which critic ran with which settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

GOOD = "good"
POOR = "poor"
LABELS = (GOOD, POOR)
SEVERITIES = ("minor", "major", "critical")
# What a span's severity weighs when it becomes a reward span (Span.weight in the studio).
SEVERITY_WEIGHT = MappingProxyType({"minor": 0.5, "major": 1.0, "critical": 1.0})

# Evidence kinds, so a reviewer can tell a failing test from an LLM's opinion.
EVIDENCE_KINDS = (
    "failing-test",
    "exception",
    "timeout",
    "syntax-error",
    "missing-function",
    "passing-tests",
    "reference-fact",
    "llm-quote",
    "custom",
    "critic-error",
)


@dataclass(frozen=True)
class Evidence:
    """Why a critic said something: the kind of proof and its text (a test, a traceback line, a fact...).

    ``source`` is where it came from (the test statement, the reference sentence, the LLM's raw phrase).
    """

    kind: str
    detail: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE_KINDS:
            raise ValueError(f"unknown evidence kind {self.kind!r}")


@dataclass(frozen=True)
class SpanCritique:
    """A critique of ``output[start:end]`` (Python code points, end exclusive), labelled good or poor."""

    start: int
    end: int
    label: str
    severity: str
    text: str
    evidence: Evidence

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def polarity(self) -> int:
        """+1 for good, -1 for poor (the sign of the span's token rewards)."""
        return 1 if self.label == GOOD else -1

    @property
    def weight(self) -> float:
        return SEVERITY_WEIGHT[self.severity]

    def text_in(self, output: str) -> str:
        return output[self.start : self.end]


def _settings_json(settings: Mapping[str, Any]) -> str:
    """Settings as canonical JSON (sorted keys): hashable, comparable, and stored as is."""
    try:
        return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"critic settings must be JSON values: {exc}") from exc


@dataclass(frozen=True)
class CriticRecord:
    """What ran: the critic's name, its version and its full settings (defaults filled in), frozen.

    A run stores ``as_dict()``; two runs with equal records ran the same critic the same way.
    """

    name: str
    version: str
    settings_json: str = "{}"

    @property
    def settings(self) -> dict:
        return json.loads(self.settings_json)

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "settings": self.settings}


@dataclass(frozen=True)
class CriticItem:
    """What a critic reads: the prompt, the model's output and the item's metadata.

    ``metadata`` holds what the critic needs: ``test`` and ``entry_point`` (code), ``reference`` (text).
    """

    prompt: str
    output: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CriticResult:
    """A critic's verdict on one output: overall critique, rating (1-5, None when it has no opinion),
    span critiques, whole-output evidence, and the problems met on the way (an LLM's malformed answer,
    a span that could not be located). ``status`` is ``ok``, ``partial`` (some of the answer was
    unusable) or ``failed`` (nothing usable: the critique says why)."""

    critic: CriticRecord
    critique: str
    rating: int | None
    spans: tuple[SpanCritique, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    problems: tuple[str, ...] = ()
    status: str = "ok"

    def __post_init__(self) -> None:
        if self.rating is not None and not 1 <= self.rating <= 5:
            raise ValueError(f"rating must be 1-5 or None, got {self.rating}")
        if self.status not in ("ok", "partial", "failed"):
            raise ValueError(f"unknown status {self.status!r}")

    def as_dict(self) -> dict:
        """A JSON-ready dict (stored with the machine annotation)."""
        data = asdict(self)
        data["critic"] = self.critic.as_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def _check_type(critic: str, key: str, value: Any, default: Any) -> None:
    """A setting has its default's type (an int may stand for a float), so bad configuration fails early."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if isinstance(default, Mapping):
        expected = dict
    if isinstance(default, list | tuple):
        expected = list
    ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
    if not ok:
        raise TypeError(f"{critic}: setting {key!r} must be {expected.__name__}, got {type(value).__name__}")


class Critic:
    """A machine critic. Subclasses set ``name``, ``version`` and ``defaults`` and implement ``critique``.

    Settings are checked against ``defaults`` (an unknown key is an error, so a typo in a project's
    configuration does not silently run the defaults) and recorded in ``self.record``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown settings {unknown}; known: {sorted(self.defaults)}")
        for key, value in settings.items():
            _check_type(self.name, key, value, self.defaults[key])
        merged = {**self.defaults, **settings}
        self.settings = merged
        self.record = CriticRecord(self.name, self.version, _settings_json(merged))

    def critique(self, item: CriticItem) -> CriticResult:
        raise NotImplementedError

    def result(self, critique: str, rating: int | None, spans=(), evidence=(), problems=(), status="ok"):
        """A ``CriticResult`` of this critic, spans sorted by position."""
        ordered = tuple(sorted(spans, key=lambda s: (s.start, s.end, s.label)))
        return CriticResult(self.record, critique, rating, ordered, tuple(evidence), tuple(problems), status)
