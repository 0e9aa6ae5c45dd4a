"""Runs inside the sandbox (never imported): the solution, then each test statement on its own.

The parent prepends ``CONFIG = {...}`` (solution, test, entry_point, per_test_seconds, marker). Each result
is one line ``<marker><json>`` on the real stdout; the solution's own prints are discarded. For every call
of the function under test it records the arguments, the result or the exception, the solution lines it
ran and the last one (for a failed assertion, the statement that produced the value), so the parent can
put the failure on the output's lines.
"""

# ruff: noqa: F821
import ast
import json
import signal
import sys
import traceback

SOLUTION = "<solution>"
TESTS = "<tests>"
_OUT = sys.stdout


def emit(event):
    _OUT.write(CONFIG["marker"] + json.dumps(event) + "\n")
    _OUT.flush()


class _Sink:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


class TestTimeout(
    BaseException
):  # not an Exception: a bare ``except Exception`` in the solution can't eat it
    pass


def _alarm(signum, frame):
    raise TestTimeout()


def short(value, limit=200):
    try:
        text = repr(value)
    except BaseException as exc:  # a broken __repr__ in the solution's objects
        text = f"<unprintable {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_line(tb, filename):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe(exc):
    if isinstance(exc, TestTimeout):
        return f"timed out after {CONFIG['per_test_seconds']} s"
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]


CALLS = []
DEPTH = [0]
TRACE = [False]  # line tracing slows loops several times: only the rerun that looks for lines traces


class Recorder:
    def __init__(self):
        self.lines = set()
        self.last = None

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename != SOLUTION:
            return None
        if event == "line":
            self.lines.add(frame.f_lineno)
            self.last = frame.f_lineno
        return self


def wrap(function):
    def candidate(*args, **kwargs):
        if DEPTH[0]:
            return function(*args, **kwargs)
        shown = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
        call = {"args": ", ".join(shown)}
        CALLS.append(call)
        recorder = Recorder()
        DEPTH[0] += 1
        previous = sys.gettrace()
        if TRACE[0]:
            sys.settrace(recorder)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            call["exc_line"] = last_line(exc.__traceback__, SOLUTION)
            call["error"] = describe(exc)
            raise
        finally:
            if TRACE[0]:
                sys.settrace(previous)
            DEPTH[0] -= 1
            call["lines"] = sorted(recorder.lines)[:500]
            call["last_line"] = recorder.last
        call["result"] = short(result)
        return result

    return candidate


def names_in(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def expected_of(node, names, namespace):
    """What a failed ``assert`` wanted, when it says: the other side of ``==``, or True / False."""
    if not isinstance(node, ast.Assert):
        return None
    test = node.test
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and names_in(test.operand) & names:
        return "a false value"
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq | ast.Is):
        left, right = test.left, test.comparators[0]
        other = right if names_in(left) & names else left if names_in(right) & names else None
        if other is not None and not names_in(other) & names:  # an expected value, not another call
            try:
                value = eval(compile(ast.Expression(other), TESTS, "eval"), namespace)
            except BaseException:
                return None
            return short(value)
    if names_in(test) & names and isinstance(test, ast.Call):
        return "a true value"
    return None


def is_check(stmt, names):
    """A statement that tests something: an assert, or code that calls the function; not a definition."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom):
        return False
    return isinstance(stmt, ast.Assert) or bool(names_in(stmt) & names)


def failing_assert(tree, stmt, line):
    """The ``assert`` at ``line`` of the tests (inside a loop or a test function too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.lineno == line:
            return node
    return stmt if isinstance(stmt, ast.Assert) else None


def run(stmt, traced):
    """Run one test statement; its status (pass, fail, error, timeout), message and line in the tests."""
    CALLS.clear()
    TRACE[0] = traced
    status, message, test_line = "pass", "", None
    signal.setitimer(signal.ITIMER_REAL, CONFIG["per_test_seconds"])
    try:
        exec(compile(ast.Module(body=[stmt], type_ignores=[]), TESTS, "exec"), NAMESPACE)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        test_line = last_line(exc.__traceback__, TESTS)
        if isinstance(exc, TestTimeout):
            status = "timeout"
        else:
            returned = bool(CALLS) and "result" in CALLS[-1]  # a test that chokes on the value fails it
            status = "fail" if returned or (isinstance(exc, AssertionError) and not CALLS) else "error"
        message = describe(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        TRACE[0] = False
    return status, message, test_line


NAMESPACE = {"__name__": "__main__"}


def main():
    entry = CONFIG["entry_point"]
    try:
        code = compile(CONFIG["solution"], SOLUTION, "exec")
    except SyntaxError as exc:
        emit(
            {
                "event": "syntax-error",
                "line": exc.lineno,
                "message": exc.msg,
                "text": (exc.text or "").strip(),
            }
        )
        return
    namespace = NAMESPACE
    sys.stdout = _Sink()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CONFIG["per_test_seconds"])
    try:
        exec(code, namespace)
    except BaseException as exc:
        emit(
            {"event": "load-error", "line": last_line(exc.__traceback__, SOLUTION), "message": describe(exc)}
        )
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    function = namespace.get(entry)
    if not callable(function):
        defined = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("_"))
        emit({"event": "missing-function", "name": entry, "defined": defined[:20]})
        return
    try:
        tree = ast.parse(CONFIG["test"])
    except SyntaxError as exc:
        emit({"event": "test-error", "message": f"the tests do not parse: {exc.msg} (line {exc.lineno})"})
        return
    wrapped = wrap(function)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    names = {entry}
    if checks:  # HumanEval style: check(candidate) holds the asserts
        check = checks[0]
        setup = [n for n in tree.body if not (isinstance(n, ast.Expr) and "check" in names_in(n))]
        try:
            exec(compile(ast.Module(body=setup, type_ignores=[]), TESTS, "exec"), namespace)
        except BaseException as exc:
            emit(
                {
                    "event": "test-error",
                    "message": f"the tests fail before checking anything: {describe(exc)}",
                }
            )
            return
        parameter = check.args.args[0].arg if check.args.args else "candidate"
        namespace[parameter] = wrapped
        names.add(parameter)
        statements = [(s, is_check(s, names)) for s in check.body]
    else:  # plain asserts at the top level, and test_* functions
        statements = [(s, is_check(s, names)) for s in tree.body]
        tests = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name.startswith("test")]
        statements += [(ast.parse(f"{s.name}()").body[0], s) for s in tests]
    namespace[entry] = wrapped
    for index, (stmt, is_test) in enumerate(statements):
        shown = is_test if isinstance(is_test, ast.AST) else stmt  # a test function is shown by its source
        is_test = bool(is_test)
        source = ast.get_source_segment(CONFIG["test"], shown) or ast.unparse(shown)
        status, message, test_line = run(stmt, traced=False)
        calls = list(CALLS)
        # Which lines: a failed assertion needs the line that produced the value, a pass its coverage.
        # The traced rerun counts only when it ends the same way (a slow loop may time out traced).
        if is_test and (status == "fail" or (status == "pass" and CONFIG["trace_passing"])):
            again = run(stmt, traced=True)
            if again[0] == status:
                calls, test_line = list(CALLS), again[2]
        event = {
            "event": "test",
            "index": index,
            "is_test": is_test,
            "source": source[:400],
            "status": status,
        }
        event["message"] = message
        event["calls"] = calls[-5:]
        event["covered"] = sorted({line for call in calls for line in call["lines"]})
        if status == "fail":
            event["expected"] = expected_of(failing_assert(tree, stmt, test_line), names, namespace)
        emit(event)
    emit({"event": "done"})


if __name__ == "__main__":  # the sandbox runs it as a script; importing it runs nothing
    main()
