"""The sandbox's child process: isolate itself, then run ``main.py`` (see ``text2grad/sandbox.py``).

Started as ``[unshare ...] python -I -S -B _sandbox_child.py <base>/sandbox.json``; imports only the
standard library. In the namespaces (mode ``root`` or ``userns``) it is the first process of a new PID
namespace, with its own mount and network namespaces: it builds a new root holding only read-only system
folders and its own writable folder, ``pivot_root``s into it, gives up every privilege, sets the rlimits
and runs the code. An empty ``main.py`` is the parent's probe that all of this works here.
"""

import ctypes
import ctypes.util
import json
import os
import platform
import resource
import sys

CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 24, 28, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECBITS_LOCKED_NOROOT = 0x2F  # NOROOT, NO_SETUID_FIXUP and KEEP_CAPS_LOCKED, each locked
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
DEVICES = ("null", "zero", "random", "urandom")
# Imported before the child drops its privileges: where the interpreter's standard library is not
# readable by the run's uid, these are the modules tests can still import.
PRELOAD = (
    "abc", "bisect", "collections", "collections.abc", "copy", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "math", "operator", "random", "re",
    "statistics", "string", "sys", "time", "typing", "unittest",
)  # fmt: skip

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sandbox: {what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags: int, data=None) -> None:
    enc = lambda value: value.encode() if isinstance(value, str) else value  # noqa: E731
    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {source} on {target}",
    )


def _kept_flags(path: str) -> int:
    """The flags a remount must keep (the kernel refuses to clear those locked by the parent namespace)."""
    flags = os.statvfs(path).f_flag
    kept = 0
    for statvfs_flag, mount_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                                     (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
                                     (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):  # fmt: skip
        if flags & statvfs_flag:
            kept |= mount_flag
    return kept


def _bind(source: str, target: str, *, readonly: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(target))


def _new_root(config: dict) -> None:
    """Build the new root under ``newroot`` and pivot into it; the host's tree is then out of reach."""
    root = config["newroot"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in config["readonly"]:
        target = root + path
        if os.path.islink(path):  # /bin -> usr/bin on merged-/usr systems
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        _bind(path, target, readonly=True)
    os.makedirs(root + "/dev", exist_ok=True)
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
        _bind(f"/dev/{name}", f"{root}/dev/{name}", readonly=False)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    workdir = config["workdir"]
    os.makedirs(root + workdir, exist_ok=True)
    _bind(workdir, root + workdir, readonly=False)
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)  # the skeleton itself
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"sandbox: pivot_root's number on {platform.machine()} is unknown")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    os.chdir(workdir)


def _drop_capabilities() -> None:
    """In a user namespace: keep no capability now or after any exec (uid 0 there gets none back)."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECUREBITS, SECBITS_LOCKED_NOROOT, 0, 0, 0), "securebits")
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]  # fmt: skip

    header, data = Header(0x20080522, 0), (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "drop capabilities")


def _isolate_network() -> bool:
    return _libc.unshare(CLONE_NEWNET) == 0


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


def _run_below_init(status_fd: int) -> None:
    """This process is PID 1 of the run's PID namespace, and the kernel does not deliver a signal whose
    action is the default to a namespace's init: the CPU limit's SIGXCPU would be dropped, and `unshare`
    cannot re-raise the SIGKILL that follows. So the program runs in a child; PID 1 waits for it and
    reports how it ended (``exit N`` or ``signal N``) on ``status_fd``, which the child closes first."""
    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        return
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        report, code = f"signal {os.WTERMSIG(status)}", 128 + os.WTERMSIG(status)
    else:
        code = os.waitstatus_to_exitcode(status)
        report = f"exit {code}"
    os.write(status_fd, report.encode())
    os._exit(code)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    for name in PRELOAD:
        __import__(name)
    isolated = config["mode"] in ("root", "userns")
    if isolated:
        _new_root(config)
        if config["mode"] == "root":
            os.setgroups([])
            os.setgid(config["uid"])
            os.setuid(config["uid"])
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        else:
            _drop_capabilities()
    else:  # the admin's opt-out: no namespaces (a network namespace only where the kernel allows it)
        os.chdir(config["workdir"])
        isolated = _isolate_network()
    status_fd = config.get("status_fd")
    if config["mode"] in ("root", "userns") and status_fd is not None:
        _run_below_init(status_fd)  # returns in the child only
    elif status_fd is not None:
        os.close(status_fd)  # no PID namespace: the program's end is this process's own
    _limit(config)
    if not isolated:
        sys.stderr.write("T2G_SANDBOX_NET=audit-hook\n")
        sys.stderr.flush()
    sys.addaudithook(_audit_hook(config["workdir"], block_sockets=not isolated))
    del sys.argv[1:]
    sys.argv[0] = "main.py"
    with open("main.py", encoding="utf-8") as handle:
        source = handle.read()
    namespace = {"__name__": "__main__", "__file__": "main.py"}
    exec(compile(source, "main.py", "exec"), namespace)  # the point of the sandbox


if __name__ == "__main__":
    main()
