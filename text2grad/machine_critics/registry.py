"""Critics by name: the built-in four, plus any a deployment registers."""

from __future__ import annotations

import json
from typing import Any

from .base import Critic, CriticRecord
from .custom import CustomCritic
from .llm import LLMCritic
from .reference import ReferenceCritic
from .unit_tests import UnitTestCritic

_REGISTRY: dict[str, type[Critic]] = {
    cls.name: cls for cls in (UnitTestCritic, ReferenceCritic, LLMCritic, CustomCritic)
}


def register(cls: type[Critic]) -> type[Critic]:
    """Add a critic class under its ``name`` (usable as a decorator); a taken name is an error."""
    if not cls.name:
        raise ValueError("a critic needs a name")
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"a critic named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def critic_names() -> list[str]:
    return sorted(_REGISTRY)


def critic_class(name: str) -> type[Critic]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no critic named {name!r}; known: {critic_names()}") from None


def build_critic(name: str, settings: dict[str, Any] | None = None) -> Critic:
    """A configured critic; unknown names and unknown settings raise (a project's configuration is checked)."""
    return critic_class(name)(**(settings or {}))


def critic_from_record(record: CriticRecord | dict) -> Critic:
    """The critic a stored run used, configured as it was; a different version is an error."""
    if isinstance(record, dict):
        record = CriticRecord(record["name"], record["version"], _canonical(record.get("settings") or {}))
    cls = critic_class(record.name)
    if cls.version != record.version:
        raise ValueError(f"critic {record.name!r} is version {cls.version}, the record says {record.version}")
    return cls(**record.settings)


def _canonical(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))
