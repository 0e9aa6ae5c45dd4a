"""The unit-test sandbox stops what untrusted code might do; each test has a positive control."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from text2grad import sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")
QUICK = sandbox.Limits(cpu_seconds=2, wall_seconds=6, memory_bytes=256 * 1024 * 1024, processes=8)


def test_plain_code_runs_and_can_use_its_folder():
    result = sandbox.run_python("open('a.txt', 'w').write('ok')\nprint(open('a.txt').read())", limits=QUICK)
    assert result.passed and result.stdout == "ok\n"


@pytest.mark.heavy
def test_infinite_loop_is_stopped_by_the_cpu_limit():
    started = time.monotonic()
    result = sandbox.run_python("while True:\n    pass\n", limits=QUICK)
    assert not result.passed
    assert result.signal_name in ("SIGXCPU", "SIGKILL")
    assert time.monotonic() - started < QUICK.wall_seconds + 2


@pytest.mark.heavy
def test_sleeping_forever_is_stopped_by_the_wall_clock():
    result = sandbox.run_python("import time\ntime.sleep(60)\n", limits=QUICK)
    assert result.timed_out and not result.passed
    assert result.seconds < QUICK.wall_seconds + 2


@pytest.mark.heavy
def test_fork_bomb_is_capped_and_cleaned_up():
    code = (
        "import os, sys\n"
        "made = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        import time; time.sleep(30); os._exit(0)\n"
        "    made += 1\n"
        "print(made)\n"
        "sys.stdout.flush()\n"
        "os._exit(3)\n"
    )
    started = time.monotonic()
    result = sandbox.run_python(code, limits=QUICK)
    made = int(result.stdout.strip())
    assert made < QUICK.processes  # the rest of the forks were refused
    assert result.returncode == 3
    # Its sleeping children did not outlive the run (they would keep the pipes open for 30 s).
    assert time.monotonic() - started < 10


def test_memory_hog_gets_a_memory_error():
    result = sandbox.run_python("x = bytearray(1024 * 1024 * 1024)\nprint('allocated')", limits=QUICK)
    assert not result.passed and "MemoryError" in result.stderr and "allocated" not in result.stdout
    small = sandbox.run_python("x = bytearray(16 * 1024 * 1024)\nprint('allocated')", limits=QUICK)
    assert small.passed and small.stdout == "allocated\n"


def test_big_file_is_cut_by_the_file_size_limit():
    limits = sandbox.Limits(cpu_seconds=2, wall_seconds=6, file_bytes=64 * 1024)
    result = sandbox.run_python("open('big', 'wb').write(b'x' * 1024 * 1024)", limits=limits)
    assert not result.passed and "File too large" in result.stderr


@pytest.mark.parametrize(
    "code",
    [
        "open({target!r}, 'w').write('escaped')",
        "import os\nfd = os.open({target!r}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'escaped')",
        "import shutil\nopen('inside', 'w').write('escaped')\nshutil.move('inside', {target!r})",
        "import ctypes\nlibc = ctypes.CDLL(None)",
    ],
)
def test_writes_outside_its_folder_are_refused(code):
    target = f"/tmp/t2g-escape-{uuid.uuid4().hex}"
    result = sandbox.run_python(code.format(target=target), limits=QUICK)
    assert not result.passed and "PermissionError" in result.stderr
    assert not Path(target).exists()


def test_network_calls_fail_inside_and_succeed_outside():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    try:
        result = sandbox.run_python(code, limits=QUICK)
        assert not result.passed and "connected" not in result.stdout
        assert "Error" in result.stderr
        # Control: the same call from this process reaches the server.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for _ in range(50):
            if accepted:
                break
            time.sleep(0.02)
        assert len(accepted) == 1  # only the control's connection arrived
    finally:
        server.close()
    if os.geteuid() == 0:
        assert result.network_isolation == "namespace"


def test_humaneval_program_passes_only_a_correct_completion():
    prompt = "def add(a, b):\n    '''Sum.'''\n"
    test = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    good = sandbox.run_python(sandbox.humaneval_program(prompt, "    return a + b\n", test, "add"))
    bad = sandbox.run_python(sandbox.humaneval_program(prompt, "    return a - b\n", test, "add"))
    whole = sandbox.run_python(
        sandbox.humaneval_program(prompt, "def add(a, b):\n    return b + a\n", test, "add")
    )
    assert good.passed and whole.passed and not bad.passed
