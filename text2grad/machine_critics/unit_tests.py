"""The unit-test critic: runs a code output against the item's tests in the sandbox and critiques it.

Each test statement runs on its own (a HumanEval ``check`` body statement by statement, or top-level
asserts and ``test_*`` functions), so one failure does not hide the others, and within
``per_test_seconds``. The verdict comes from a run without tracing (tracing slows loops several times);
a failed assertion, and a pass when ``mark_good`` is on, are run once more with line tracing to find the
lines, which count only if that run ends the same way. A failing test becomes a poor
span on the output line it implicates: the line that raised, for an exception or a time-out inside the
function; the last line the function ran (the statement that produced the wrong value), for a failed
assertion. Its critique names the input, the expected and the actual value. Lines that passing tests ran
are marked good (minor) when ``mark_good`` is on. Syntax errors, a missing function, errors while
defining the code and a run that exceeds the sandbox's limits get a whole-output critique.

Rating: 5 when every test passes; 1 when none does or the code cannot run (syntax error, missing
function, stopped by the sandbox); else ``1 + int(4 * passed / total)``, at most 4. No rating when the
tests check nothing.

The program is built as ``sandbox.humaneval_program`` builds it (the stub, then the completion; the
completion alone when it repeats the signature, after the stub's imports), so the verdict "passes all
tests" agrees with the evaluation's code metric.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .. import sandbox
from .base import GOOD, POOR, Critic, CriticItem, CriticResult, Evidence, SpanCritique

HARNESS = Path(__file__).with_name("_harness.py")
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)  # the evaluation's fence rule


@dataclass(frozen=True)
class CodeMap:
    """The code inside an output (its fenced blocks, or all of it) and where each code character sits."""

    code: str
    offsets: tuple[int | None, ...]  # output offset of each code character; None for a joining newline

    @classmethod
    def of(cls, output: str) -> CodeMap:
        blocks = list(_FENCE.finditer(output))
        if not blocks:
            return cls(output, tuple(range(len(output))))
        code, offsets = [], []
        for number, match in enumerate(blocks):
            if number:
                code.append("\n\n")
                offsets += [None, None]
            code.append(match.group(1))
            offsets += range(match.start(1), match.end(1))
        return cls("".join(code), tuple(offsets))

    def line_span(self, line: int) -> tuple[int, int] | None:
        """Output ``[start, end)`` of code line ``line`` (1-based), without indentation; None when blank."""
        lines = self.code.split("\n")
        if not 1 <= line <= len(lines):
            return None
        begin = sum(len(text) + 1 for text in lines[: line - 1])
        text = lines[line - 1]
        stripped = text.strip()
        if not stripped:
            return None
        first = begin + len(text) - len(text.lstrip())
        last = first + len(stripped) - 1
        start, end = self.offsets[first], self.offsets[last]
        if start is None or end is None:
            return None
        return start, end + 1

    def is_quiet(self, line: int) -> bool:
        """A blank or comment-only line (it never runs, so it does not break a block of covered lines)."""
        lines = self.code.split("\n")
        text = lines[line - 1].strip() if 1 <= line <= len(lines) else ""
        return not text or text.startswith("#")


def _compose(stub: str, code: str, entry_point: str) -> tuple[str, int]:
    """The solution as the evaluation composes it, and how many lines come before the output's code."""
    prefix = stub + "\n" if f"def {entry_point}" in code else stub
    return prefix + code, prefix.count("\n")


def _rating(passed: int, total: int) -> int:
    if total == 0:
        return 1
    if passed == total:
        return 5
    return min(4, 1 + int(4 * passed / total))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class UnitTestCritic(Critic):
    """Critiques code by running the item's tests (``metadata["test"]``, ``metadata["entry_point"]``).

    The stub the output completes is ``metadata["stub"]`` when given, else the prompt without
    ``prompt_prefix``.

    Example:
        >>> item = CriticItem("Complete:\\n\\n", "def absolute(x):\\n    return x\\n",
        ...                   {"entry_point": "absolute", "test": "assert absolute(-2) == 2"})
        >>> result = UnitTestCritic(prompt_prefix="Complete:\\n\\n").critique(item)  # doctest: +SKIP
        >>> result.spans[0].text  # doctest: +SKIP
        'For input absolute(-2) the test expects 2, but the function returns -2.'
    """

    name = "unit-tests"
    version = "1"
    defaults = MappingProxyType(
        {
            "prompt_prefix": "Complete this Python function:\n\n",
            "per_test_seconds": 3.0,
            "cpu_seconds": 30,
            "wall_seconds": 60.0,
            "memory_mb": 512,
            "mark_good": True,
            "max_examples": 3,
        }
    )

    def critique(self, item: CriticItem) -> CriticResult:
        test = item.metadata.get("test")
        entry_point = item.metadata.get("entry_point")
        if (
            not isinstance(test, str)
            or not test.strip()
            or not isinstance(entry_point, str)
            or not entry_point
        ):
            return self.result(
                "No unit tests to run: the item needs metadata 'test' and 'entry_point'.",
                None,
                problems=["missing metadata: test / entry_point"],
                status="failed",
            )
        stub = item.metadata.get("stub")
        if not isinstance(stub, str):
            stub = item.prompt.removeprefix(self.settings["prompt_prefix"])
        code_map = CodeMap.of(item.output)
        solution, before = _compose(stub, code_map.code, entry_point)
        marker = f"@@t2g-{secrets.token_hex(8)}@@"
        config = {
            "solution": solution,
            "test": test,
            "entry_point": entry_point,
            "per_test_seconds": float(self.settings["per_test_seconds"]),
            "trace_passing": bool(self.settings["mark_good"]),
            "marker": marker,
        }
        program = f"CONFIG = {config!r}\n" + HARNESS.read_text(encoding="utf-8")
        limits = sandbox.Limits(
            cpu_seconds=int(self.settings["cpu_seconds"]),
            wall_seconds=float(self.settings["wall_seconds"]),
            memory_bytes=int(self.settings["memory_mb"]) * 1024 * 1024,
        )
        run = sandbox.run_python(program, limits=limits)
        events = []
        for line in run.stdout.splitlines():
            if line.startswith(marker):
                try:
                    events.append(json.loads(line[len(marker) :]))
                except json.JSONDecodeError:
                    continue
        return _Reading(self, item.output, code_map, before, entry_point, run, events).result()


class _Reading:
    """Turns the harness's events into a ``CriticResult``."""

    def __init__(self, critic, output, code_map, before, entry_point, run, events) -> None:
        self.critic = critic
        self.output = output
        self.code_map = code_map
        self.before = before
        self.entry_point = entry_point
        self.run = run
        self.events = events

    def span_of(self, solution_line: int | None) -> tuple[int, int] | None:
        """Output offsets of a line of the composed solution, when that line is the output's."""
        if solution_line is None or solution_line <= self.before:
            return None
        return self.code_map.line_span(solution_line - self.before)

    def whole(self, critique: str, evidence: Evidence, line: int | None = None) -> CriticResult:
        spans = []
        where = self.span_of(line)
        if where:
            spans.append(SpanCritique(*where, POOR, "critical", critique, evidence))
        return self.critic.result(critique, 1, spans, [evidence])

    def result(self) -> CriticResult:
        first = self.events[0] if self.events else {}
        kind = first.get("event")
        if kind == "syntax-error":
            where = first.get("line")
            in_output = self.span_of(where) is not None
            place = f"line {where - self.before} of the code" if in_output and where else "the program"
            text = f"Syntax error on {place}: {first.get('message')} ({first.get('text', '')!r}). No test could run."
            return self.whole(text, Evidence("syntax-error", text, first.get("text", "")), where)
        if kind == "load-error":
            text = f"The code fails while being defined: {first.get('message')}. No test could run."
            return self.whole(text, Evidence("exception", first.get("message", ""), ""), first.get("line"))
        if kind == "missing-function":
            defined = ", ".join(first.get("defined") or []) or "nothing callable"
            text = f"The code defines no function `{self.entry_point}`, which the tests call (it defines: {defined})."
            return self.whole(text, Evidence("missing-function", text, self.entry_point))
        if kind == "test-error":
            return self.critic.result(
                first.get("message", ""), None, problems=[first.get("message", "")], status="failed"
            )
        tests = [e for e in self.events if e.get("event") == "test"]
        finished = any(e.get("event") == "done" for e in self.events)
        if not finished:
            return self.cut_short(tests)
        return self.judged(tests)

    def cut_short(self, tests: list[dict]) -> CriticResult:
        """The sandbox stopped the run (wall clock, CPU, memory) before every test ran."""
        run = self.run
        why = (
            "timed out"
            if run.timed_out
            else f"was stopped ({run.signal_name or 'exit ' + str(run.returncode)})"
        )
        tail = (run.stderr.strip().splitlines() or [""])[-1][:200]
        text = f"The program {why} after {len(tests)} test statement(s) had run"
        text += f"; last error: {tail}." if tail and not run.timed_out else "."
        kind = "timeout" if run.timed_out or run.signal_name in ("SIGXCPU", "SIGKILL") else "exception"
        return self.whole(text, Evidence(kind, text, tail))

    def judged(self, tests: list[dict]) -> CriticResult:
        counted = [t for t in tests if t.get("is_test")]
        failures = [t for t in tests if t["status"] != "pass"]
        passed = sum(1 for t in counted if t["status"] == "pass")
        total = len(counted) + sum(1 for t in failures if not t.get("is_test"))
        if total == 0:
            text = f"The tests ran but none of them checks `{self.entry_point}`: no verdict."
            return self.critic.result(text, None, problems=[text], status="failed")
        by_line: dict[tuple[int, int], list[tuple[str, Evidence, str]]] = {}
        loose: list[str] = []
        evidence: list[Evidence] = []
        for test in failures:
            call = test["calls"][-1] if test["calls"] else None
            sentence = self.sentence(test, call)
            proof = Evidence(_EVIDENCE[test["status"]], test.get("message") or sentence, test["source"])
            evidence.append(proof)
            line = None
            if call:
                line = call.get("exc_line") if test["status"] != "fail" else call.get("last_line")
            where = self.span_of(line)
            if where:
                by_line.setdefault(where, []).append((sentence, proof, test["status"]))
            else:
                loose.append(sentence)
        spans = []
        limit = int(self.critic.settings["max_examples"])
        for (start, end), found in by_line.items():
            text = " ".join(sentence for sentence, _, _ in found[:limit])
            if len(found) > limit:
                text += f" ({len(found) - limit} more failing tests here.)"
            severity = "critical" if any(status != "fail" for _, _, status in found) else "major"
            spans.append(SpanCritique(start, end, POOR, severity, text, found[0][1]))
        if self.critic.settings["mark_good"]:
            spans += self.good_spans(tests, {key for key in by_line})
        if not failures:
            critique = f"Passes all {_plural(passed, 'test')}."
            evidence.append(Evidence("passing-tests", critique, ""))
        else:
            examples = [s for found in by_line.values() for s, _, _ in found] + loose
            critique = f"Fails {len(failures)} of {_plural(total, 'test')}: " + " ".join(examples[:limit])
            if len(examples) > limit:
                critique += f" ({len(examples) - limit} more.)"
        return self.critic.result(critique, _rating(passed, total), spans, evidence)

    def sentence(self, test: dict, call: dict | None) -> str:
        if call is None:
            return f"The test `{test['source'][:120]}` failed: {test.get('message') or 'assertion failed'}."
        shown = f"{self.entry_point}({call['args']})"
        if test["status"] == "timeout":
            return f"For input {shown} the function does not finish: it {call.get('error') or 'timed out'}."
        if test["status"] == "error":
            error = call.get("error") or test.get("message")
            return f"For input {shown} the function raises {error}."
        expected = test.get("expected")
        message = test.get("message") or ""
        why = f" ({message})" if message and not message.startswith("AssertionError") else ""
        wanted = (
            f"the test expects {expected}" if expected else f"the check `{test['source'][:120]}` fails{why}"
        )
        return f"For input {shown} {wanted}, but the function returns {call.get('result')}."

    def good_spans(self, tests: list[dict], poor: set[tuple[int, int]]) -> list[SpanCritique]:
        """Blocks of lines that passing tests ran and no failure points at."""
        covered = sorted({line for t in tests if t["status"] == "pass" for line in t.get("covered", [])})
        lines = [line for line in covered if line > self.before]
        blocks: list[list[int]] = []
        for line in lines:
            where = self.span_of(line)
            if where is None or where in poor:
                continue
            code_line = line - self.before
            if blocks:
                gap = range(blocks[-1][-1] - self.before + 1, code_line)
                if all(self.code_map.is_quiet(between) for between in gap):
                    blocks[-1].append(line)
                    continue
            blocks.append([line])
        passing = sum(1 for t in tests if t["status"] == "pass" and t.get("is_test"))
        spans = []
        for block in blocks:
            start, end = self.span_of(block[0])[0], self.span_of(block[-1])[1]
            text = f"Run by passing tests ({passing} passed)."
            spans.append(SpanCritique(start, end, GOOD, "minor", text, Evidence("passing-tests", text, "")))
        return spans


_EVIDENCE = {"fail": "failing-test", "error": "exception", "timeout": "timeout"}
