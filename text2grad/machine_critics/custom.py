"""Your own critic: a Python function or class named by a dotted path, run in the sandbox.

``path`` is ``package.module:name`` (or ``package.module.name``). The module's source is read here,
without importing it, and runs in the sandbox (``text2grad.sandbox``) in a module of its own, so it
may import the standard library only. ``name`` is either

- a function ``name(prompt, output, metadata, **options)``, or
- a class: ``name(**options).critique(prompt, output, metadata)``,

returning ``{"critique": str, "rating": 1-5 or None, "spans": [{"start", "end" (or "quote"), "label":
"good"|"poor", "severity": "minor"|"major"|"critical", "text", "evidence"}]}``. The answer is checked
against that schema; what does not fit is dropped and reported in ``problems``, never raised.

Example module::

    def critique(prompt, output, metadata, banned=("TODO",)):
        spans = [{"start": output.find(w), "end": output.find(w) + len(w), "label": "poor",
                  "text": f"{w} left in the answer"} for w in banned if w in output]
        return {"critique": "Leftover markers." if spans else "Clean.", "rating": 2 if spans else 5,
                "spans": spans}
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path
from types import MappingProxyType

from .. import sandbox
from .answers import offset_spans, read_rating
from .base import Critic, CriticItem, CriticResult, Evidence

_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")

_RUNNER = """
import json, sys, types
module = types.ModuleType(CONFIG["module"])
module.__file__ = CONFIG["module"].replace(".", "/") + ".py"
sys.modules[CONFIG["module"]] = module
exec(compile(CONFIG["source"], module.__file__, "exec"), module.__dict__)
target = getattr(module, CONFIG["name"])
item = CONFIG["item"]
if isinstance(target, type):
    answer = target(**CONFIG["options"]).critique(item["prompt"], item["output"], item["metadata"])
else:
    answer = target(item["prompt"], item["output"], item["metadata"], **CONFIG["options"])
sys.stdout.write(CONFIG["marker"] + json.dumps(answer, default=str) + "\\n")
"""


def split_path(path: str) -> tuple[str, str]:
    """``pkg.mod:name`` or ``pkg.mod.name`` -> (``pkg.mod``, ``name``); ValueError when malformed."""
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not name or not all(_IDENTIFIER.match(p) for p in module.split(".") + [name]):
        raise ValueError(f"not a dotted path to a function or class: {path!r}")
    return module, name


def find_source(module: str, search: list[str] | None = None) -> Path:
    """The file of ``module`` on ``search`` (``sys.path`` by default), found without importing anything."""
    parts = module.split(".")
    for entry in search if search is not None else sys.path:
        base = Path(entry or ".").joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no source file for module {module!r}")


class CustomCritic(Critic):
    """Runs a critic of your own (``path``) in the sandbox with ``options`` and validates its answer."""

    name = "custom"
    version = "1"
    defaults = MappingProxyType({"path": "", "options": {}, "cpu_seconds": 10, "wall_seconds": 20.0})

    def critique(self, item: CriticItem) -> CriticResult:
        try:
            module, name = split_path(str(self.settings["path"]))
            source = find_source(module).read_text(encoding="utf-8")
        except (ValueError, OSError) as exc:
            return self.failed(str(exc))
        marker = f"@@t2g-{secrets.token_hex(8)}@@"
        config = {
            "module": module,
            "name": name,
            "source": source,
            "options": dict(self.settings["options"]),
            "item": {
                "prompt": item.prompt,
                "output": item.output,
                "metadata": json.loads(json.dumps(item.metadata, default=str)),
            },
            "marker": marker,
        }
        limits = sandbox.Limits(
            cpu_seconds=int(self.settings["cpu_seconds"]), wall_seconds=float(self.settings["wall_seconds"])
        )
        run = sandbox.run_python(f"CONFIG = {config!r}\n{_RUNNER}", limits=limits)
        line = next((ln for ln in run.stdout.splitlines() if ln.startswith(marker)), None)
        if line is None:
            why = (
                "timed out"
                if run.timed_out
                else (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1]
            )
            return self.failed(f"{self.settings['path']} gave no answer: {why[:300]}")
        try:
            answer = json.loads(line[len(marker) :])
        except json.JSONDecodeError as exc:
            return self.failed(f"{self.settings['path']} answered something that is not JSON: {exc}")
        return self.read(item.output, answer)

    def read(self, output: str, answer: object) -> CriticResult:
        """Validate a custom critic's answer against the schema (module docstring)."""
        if not isinstance(answer, dict):
            return self.failed(f"the answer must be an object, got {type(answer).__name__}")
        problems: list[str] = []
        critique = answer.get("critique")
        if not isinstance(critique, str):
            problems.append("the answer has no 'critique' text")
            critique = ""
        rating = read_rating(answer.get("rating"), problems)
        spans = offset_spans(output, answer.get("spans"), "custom", problems)
        status = "ok" if not problems else "partial" if critique or spans else "failed"
        return self.result(
            critique, rating, spans, [Evidence("custom", str(self.settings["path"]))], problems, status
        )

    def failed(self, reason: str) -> CriticResult:
        text = f"The custom critic failed: {reason}"
        return self.result(
            text, None, evidence=[Evidence("critic-error", reason)], problems=[reason], status="failed"
        )
