"""The sandbox's child process: isolate itself, then run ``main.py`` (see ``text2grad/sandbox.py``).

Started as ``python -I -S _sandbox_child.py <workdir>/sandbox.json``; imports only the standard library.
"""

import ctypes
import ctypes.util
import json
import os
import resource
import sys

CLONE_NEWNET = 0x40000000
# Imported before the child drops to its private uid: where the interpreter's standard library is not
# readable by other users (a Python under /root), these are the modules tests can still import.
PRELOAD = (
    "abc", "bisect", "collections", "collections.abc", "copy", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "math", "operator", "random", "re",
    "statistics", "string", "sys", "time", "typing", "unittest",
)  # fmt: skip


def _isolate_network() -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.unshare(CLONE_NEWNET) == 0


def _limit(config: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_seconds"], config["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"], config["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["file_bytes"], config["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (config["processes"], config["processes"]))


def _audit_hook(workdir: str, block_sockets: bool):
    root = os.path.realpath(workdir)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(root, str(path)))
        return full == root or full.startswith(root + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                (flags or 0) & write_flags
            )
            if writes and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing outside its folder is not allowed: {path!r}")
        elif event in ("os.rename", "os.replace", "os.link", "os.symlink"):
            if not (inside(args[0]) and inside(args[1])):
                raise PermissionError("sandbox: renames and links stay inside its folder")
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown"):
            if not inside(args[0]):
                raise PermissionError(f"sandbox: {event} outside its folder is not allowed")
        elif event.startswith("ctypes."):
            raise PermissionError("sandbox: ctypes is not allowed")
        elif block_sockets and event.startswith("socket."):
            raise PermissionError("sandbox: no network")

    return hook


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    os.chdir(config["workdir"])
    isolated = _isolate_network()
    for name in PRELOAD:
        __import__(name)
    if config.get("uid") is not None:
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
    _limit(config)
    if not isolated:
        sys.stderr.write("T2G_SANDBOX_NET=audit-hook\n")
    sys.addaudithook(_audit_hook(config["workdir"], block_sockets=not isolated))
    del sys.argv[1:]
    sys.argv[0] = "main.py"
    with open("main.py", encoding="utf-8") as handle:
        source = handle.read()
    namespace = {"__name__": "__main__", "__file__": "main.py"}
    exec(compile(source, "main.py", "exec"), namespace)  # the point of the sandbox


if __name__ == "__main__":
    main()
