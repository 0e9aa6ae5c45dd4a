"""Escape attempts against ``text2grad.sandbox``, as an attacker's code would make them; prints a JSON
report. Run by tests/security/test_sandbox_escapes.py in a subprocess, once as root and once as an
unprivileged user (``setpriv --reuid=nobody``), with any Python 3.11+ (standard library only).

Usage: python sandbox_attempts.py REPO_ROOT
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from text2grad import sandbox

LIMITS = sandbox.Limits(cpu_seconds=3, wall_seconds=5, memory_bytes=256 * 1024 * 1024, processes=8)
SECRET = f"t2g-secret-{uuid.uuid4().hex}"
MARK = f"{time.time() % 1000:.3f}".replace(".", "")  # a unique sleep length, to find leftovers by


def _run(code: str, limits=LIMITS) -> dict:
    started = time.monotonic()
    result = sandbox.run_python(code, limits=limits)
    return {
        "returncode": result.returncode, "stdout": result.stdout[-2000:], "stderr": result.stderr[-2000:],
        "timed_out": result.timed_out, "took": time.monotonic() - started, "isolation": result.isolation,
        "network_isolation": result.network_isolation,
    }  # fmt: skip


def _survivors(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def main() -> None:
    os.environ["T2G_ATTEMPT_SECRET"] = SECRET  # what the worker's environment might hold
    report: dict = {"euid": os.geteuid(), "mode": sandbox.isolation_mode()}
    scratch = Path(tempfile.mkdtemp(prefix="t2g-attempts-"))  # the caller's, writable by it
    scratch.chmod(0o755)

    # Files outside the sandbox's folder, through the interpreter and through child processes.
    targets = {name: scratch / f"escaped-{name}" for name in ("open", "system", "subprocess", "tmp")}
    tmp_target = Path("/tmp") / f"t2g-escape-{uuid.uuid4().hex}"
    writes = {
        "open": f"open({str(targets['open'])!r}, 'w').write('x')",
        "system": f"import os\nos.system('echo x > {targets['system']}')",
        "subprocess": f"import subprocess\nsubprocess.run(['sh', '-c', 'echo x > {targets['subprocess']}'])",
        "tmp": f"import os\nos.system('echo x > {tmp_target}')",
    }
    report["writes"] = {}
    for name, code in writes.items():
        outcome = _run(code)
        path = tmp_target if name == "tmp" else targets[name]
        outcome["written"] = path.exists()
        report["writes"][name] = outcome
    control = scratch / "control"
    subprocess.run(["sh", "-c", f"echo x > {control}"], check=True)
    report["write_control"] = control.exists()

    # A 0600 file of the caller's user, and the caller's environment.
    private = scratch / "secret.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    probe = (
        "import os\nseen = []\n"
        f"for path in [{str(private)!r}, '/proc/{os.getpid()}/environ', '/proc/1/environ',"
        " '/proc/self/environ']:\n"
        "    try:\n        seen.append(open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError as exc:\n        seen.append(repr(exc))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n            seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
        "        except OSError:\n            pass\n"
        "print('\\n'.join(seen))\n"
    )
    outcome = _run(probe)
    outcome["secret_seen"] = SECRET in outcome["stdout"]
    report["read_secrets"] = outcome

    # A process of the caller's user: not to be killed from inside.
    victim = subprocess.Popen(["sleep", "60"])
    outcome = _run(f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\nprint('killed')")
    time.sleep(0.2)
    outcome["victim_alive"] = victim.poll() is None
    victim.kill()
    victim.wait()
    report["kill"] = outcome

    # TCP to a listener on this host.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted: list = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    outcome = _run(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    )
    time.sleep(0.3)
    outcome["accepted_before_control"] = len(accepted)
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    for _ in range(50):
        if accepted:
            break
        time.sleep(0.02)
    outcome["accepted_after_control"] = len(accepted)
    server.close()
    report["tcp"] = outcome

    # Resources.
    report["fork_bomb"] = _run(
        "import os, sys\nmade = 0\nfor _ in range(500):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        import time; time.sleep(30); os._exit(0)\n"
        "    made += 1\nprint(made)\nsys.stdout.flush()\nos._exit(3)\n"
    )
    report["memory"] = _run("x = bytearray(1024 * 1024 * 1024)\nprint('allocated')")
    report["sleep"] = _run("import time\ntime.sleep(60)\n")

    # Detached grandchildren: one keeps stdout open past the limit, one is left behind at a normal exit.
    held = f"4{MARK}"
    report["held_stdout"] = _run(f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{held}'])\n")
    time.sleep(0.5)
    report["held_stdout"]["survivors"] = _survivors(f"sleep {held}")
    left = f"5{MARK}"
    report["left_behind"] = _run(
        f"import os\nos.system('setsid sleep {left} > /dev/null 2>&1 &')\nprint('bye')\n"
    )
    time.sleep(0.5)
    report["left_behind"]["survivors"] = _survivors(f"sleep {left}")
    for pid in _survivors(f"sleep {held}") + _survivors(f"sleep {left}"):
        os.kill(pid, 9)

    # Plain code still works.
    report["plain"] = _run("open('a.txt', 'w').write('ok')\nprint(open('a.txt').read())")
    print(json.dumps(report))  # noqa: T201 (the report, read by the test)


if __name__ == "__main__":
    main()
