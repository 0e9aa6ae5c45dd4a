"""Machine critics: programs and models that write span critiques of a model's output.

Not to be confused with ``text2grad.critic``, the *learned token critic* that predicts rewards. A
machine critic reads an item (the prompt, the output and the item's metadata: ``reference``, ``test``,
``entry_point``) and returns a ``CriticResult``: an overall critique, a rating (1-5, or None), and
``SpanCritique`` s — ``[start, end)`` in Python code points of the output, label ``good``/``poor``,
severity ``minor``/``major``/``critical``, a critique text — each with the ``Evidence`` behind it (the
failing test, the traceback line, the reference fact, the LLM's raw phrase). What could not be used
(a malformed LLM answer, a phrase not in the output) is listed in ``problems``; critics do not raise
on bad input or answers, they report it (``status`` ``partial`` or ``failed``).

Built-in critics, by registry name:

- ``unit-tests`` (``unit_tests``): runs code outputs against the item's tests in the sandbox; failures
  on the lines they implicate, with input, expected and actual values.
- ``reference`` (``reference``): names, numbers and dates of the reference missing from or
  contradicted by the output.
- ``llm`` (``llm``): an OpenAI-compatible chat endpoint answers the paper's JSON (critique, good and
  poor spans as quoted phrases), located with the aligner.
- ``custom`` (``custom``): a function or class of yours named by a dotted path, run in the sandbox.

Every critic is built from a name and settings (checked: an unknown key is an error); ``critic.record``
(a frozen ``CriticRecord``: name, version, settings with defaults filled in) is what a run stores, and
``critic_from_record`` rebuilds the same critic. Pure package: no Django, no Celery.

Example:
    >>> from text2grad.machine_critics import CriticItem, build_critic
    >>> critic = build_critic("reference", {"mark_good": False})
    >>> critic.record.as_dict()
    {'name': 'reference', 'version': '1', 'settings': {'kinds': ['date', 'number', 'name'], 'mark_good': False, 'window': 4}}
    >>> item = CriticItem("Summarise.", "Revenue rose 12% in 2023.", {"reference": "Revenue rose 9% in 2023."})
    >>> result = critic.critique(item)
    >>> [(s.label, s.text_in(item.output), s.text) for s in result.spans]
    [('poor', '12%', 'The reference says 9% here, not 12%.')]
    >>> result.spans[0].evidence.detail
    'Revenue rose 9% in 2023.'
"""

from .base import (
    EVIDENCE_KINDS,
    GOOD,
    LABELS,
    POOR,
    SEVERITIES,
    SEVERITY_WEIGHT,
    Critic,
    CriticItem,
    CriticRecord,
    CriticResult,
    Evidence,
    SpanCritique,
)
from .custom import CustomCritic
from .llm import LLMCritic, read_answer
from .reference import ReferenceCritic, extract_facts
from .registry import build_critic, critic_class, critic_from_record, critic_names, register
from .unit_tests import UnitTestCritic

__all__ = [
    "EVIDENCE_KINDS",
    "GOOD",
    "LABELS",
    "POOR",
    "SEVERITIES",
    "SEVERITY_WEIGHT",
    "Critic",
    "CriticItem",
    "CriticRecord",
    "CriticResult",
    "CustomCritic",
    "Evidence",
    "LLMCritic",
    "ReferenceCritic",
    "SpanCritique",
    "UnitTestCritic",
    "build_critic",
    "critic_class",
    "critic_from_record",
    "critic_names",
    "extract_facts",
    "read_answer",
    "register",
]
