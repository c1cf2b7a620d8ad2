"""Create one lab node's namespaces and hold them open: the node's PID 1.

Run as ``python -m installer.lab.nsinit`` with a JSON mount plan on stdin
(built by ``installer.lab.namespaces``). Standard library only, and nothing
here may start a thread: ``unshare(CLONE_NEWUSER)`` refuses a threaded caller.

The parent stays outside the node's PID namespace and prints ``{"pid": <host pid
of the node's init>}`` (or ``{"error": ...}``) once the mounts are in place, then
waits for the init to die. Killing that init with SIGKILL tears the node down: the
kernel kills every process of a PID namespace whose init exits.

Every node has a user namespace of its own, so root in a node holds capabilities
only over the node's own namespaces, never over the machine (its clock, network,
modules, mounts). Run as root, the mounts are made first and then locked by the
kernel (see ``_main_privileged``); run unprivileged, the node's root is the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21

# statvfs f_flag bit -> mount flag; a bind remount must keep the locked ones.
_ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
             2048: MS_NODIRATIME, 4096: MS_RELATIME}  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(rc, f"mount {source or fstype} on {target}")


def _kept_flags(path: str) -> int:
    flags = 0
    st = os.statvfs(path)
    for bit, ms in _ST_TO_MS.items():
        if st.f_flag & bit and ms != MS_RDONLY:
            flags |= ms
    return flags


def _remount(target: str, readonly: bool) -> None:
    # MS_BIND makes this change only this namespace's copy of the mount; a plain
    # MS_REMOUNT would change the filesystem itself, on the host too.
    flags = MS_REMOUNT | MS_BIND | _kept_flags(target) | (MS_RDONLY if readonly else 0)
    _mount(None, target, None, flags)


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _host_mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            points.append(_unescape(line.split()[4]))
    return points


def _userns(uid: int, gid: int) -> None:
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(user namespace)")
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"0 {gid} 1")


def setup(plan: dict[str, Any]) -> None:
    """Mount the node's view; runs as PID 1 of the new PID namespace."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Open every bind source first: later mounts may hide the paths they live under.
    fds: dict[str, int] = {}
    for step in plan["steps"]:
        if step["op"] == "bind" and step["source"] not in fds:
            fds[step["source"]] = os.open(step["source"], os.O_PATH | os.O_CLOEXEC)
    if any(step["op"] == "cgroup2" for step in plan["steps"]) and os.path.isdir("/sys/fs/cgroup"):
        fds["/sys/fs/cgroup"] = os.open("/sys/fs/cgroup", os.O_PATH | os.O_CLOEXEC)
    host_points = _host_mount_points()
    overlay = plan.get("overlay")
    overlay_ok = False
    if overlay:
        # Before the read-only remount: the overlay keeps its own writable view of the upper dir.
        try:
            opts = (
                f"lowerdir={overlay['lower']},upperdir={overlay['upper']},workdir={overlay['work']}"
            )
            _mount("overlay", overlay["target"], "overlay", 0, opts)
            overlay_ok = True
        except SetupError:
            overlay_ok = False
    if plan.get("readonly_host", True):
        for point in host_points:
            try:
                _remount(point, readonly=True)
            except (SetupError, OSError) as exc:
                if point == "/":
                    raise SetupError(
                        f"cannot make the host's / read-only for the node: {exc}"
                    ) from None
    for step in plan["steps"]:
        op = step["op"]
        when = step.get("when")
        if (when == "overlay" and not overlay_ok) or (when == "no-overlay" and overlay_ok):
            continue
        if op == "unlink":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(step["path"])  # in the overlay: a whiteout in the node's upper dir
            continue
        if op == "bind":
            if step.get("optional") and not os.path.exists(step["target"]):
                continue
            fd = fds[step["source"]]
            flags = MS_BIND | (MS_REC if step.get("rec") else 0)
            _mount(f"/proc/self/fd/{fd}", step["target"], None, flags)
            _remount(step["target"], readonly=not step.get("rw", False))
        elif op == "tmpfs":
            _mount("tmpfs", step["target"], "tmpfs", MS_NOSUID, step.get("options", "mode=755"))
        elif op == "proc":
            _mount("proc", step["target"], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif op == "mkdir":
            os.makedirs(step["path"], exist_ok=True)
        elif op == "touch":
            with open(step["path"], "a"):
                pass
        elif op == "symlink":
            os.symlink(step["to"], step["path"])
        elif op == "write":
            with open(step["path"], "w", encoding="utf-8") as fh:
                fh.write(step["content"])
        elif op == "cgroup2":
            _cgroup(step["target"], fds.get("/sys/fs/cgroup"))
        elif op == "fill":
            _fill(step["target"], int(step["size_kb"]))
        elif op == "ro":
            _remount(step["target"], readonly=True)
        elif op == "self_ro":
            if os.path.exists(step["target"]):
                _mount(step["target"], step["target"], None, MS_BIND | MS_REC)
                _remount(step["target"], readonly=True)
        else:
            raise SetupError(f"unknown mount plan step {op!r}")
    for fd in fds.values():
        os.close(fd)


def finish(plan: dict[str, Any]) -> None:
    """The node's hostname (in its own UTS namespace) and working directory."""
    name = plan["hostname"].encode()
    _check(_libc.sethostname(name, len(name)), "sethostname")
    os.chdir(plan.get("chdir", "/"))


def _cgroup(target: str, host_fd: int | None) -> None:
    """A cgroup2 view like a current distribution's; else the host's hierarchy, read-only."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY
    try:
        _mount("cgroup2", target, "cgroup2", flags)
    except SetupError:
        if host_fd is not None:
            _mount(f"/proc/self/fd/{host_fd}", target, None, MS_BIND | MS_REC)
            _remount(target, readonly=True)


def _fill(target: str, size_kb: int) -> None:
    """A full filesystem on ``target``: writes there fail with ENOSPC (the fill_disk fault)."""
    _mount("tmpfs", target, "tmpfs", MS_NOSUID, f"size={size_kb}k,mode=755")
    chunk = b"\0" * 4096
    with open(os.path.join(target, ".fmp-lab-fill"), "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass


def _init_loop() -> None:
    """Reap orphans forever, like any PID 1."""
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            signal.pause()
        except InterruptedError:
            continue


def _become_init() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _init_loop()


def _identity_map(text: str) -> str:
    """Map in a child user namespace exactly the IDs its parent maps, each to itself."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            lines.append(f"{fields[0]} {fields[0]} {fields[2]}")
    return "\n".join(lines) + "\n"


def _main_privileged(plan: dict[str, Any]) -> int:
    """Root (in the caller's user namespace): the node's mounts are locked.

    The node's init mounts its view in a mount namespace of the caller's user namespace, then
    moves into a user namespace of its own (the same IDs, none of the caller's capabilities)
    and a copy of that mount namespace. The kernel locks every mount copied into a less
    privileged namespace: root in the node can neither unmount them nor make a read-only one
    writable, and its capabilities count only inside the node's user namespace.
    """
    try:
        proc_fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with open("self/uid_map", encoding="ascii", opener=_at(proc_fd)) as fh:
            uid_map = _identity_map(fh.read())
        with open("self/gid_map", encoding="ascii", opener=_at(proc_fd)) as fh:
            gid_map = _identity_map(fh.read())
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare(mount, pid)")
    except (SetupError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    up_r, up_w = os.pipe()
    down_r, down_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(up_r)
        os.close(down_w)
        os.close(proc_fd)

        def tell(message: str) -> None:
            os.write(up_w, message.replace("\n", " ").encode() + b"\n")

        try:
            setup(plan)
            _check(_libc.unshare(CLONE_NEWUSER), "unshare(user namespace)")
            tell("map")
            if os.read(down_r, 16) != b"go":
                os._exit(1)
            _check(
                _libc.unshare(CLONE_NEWNS | CLONE_NEWUTS),
                "unshare(mount, uts) in the node's user namespace",
            )
            finish(plan)
        except Exception as exc:
            tell(f"error: {exc}")
            os._exit(1)
        tell("ok")
        os.close(up_w)
        os.close(down_r)
        _become_init()
    os.close(up_w)
    os.close(down_r)
    with os.fdopen(up_r, encoding="utf-8", errors="replace") as replies:
        msg = replies.readline().strip()
        if msg == "map":
            try:
                # Through the caller's /proc: the node's init has mounted its own over /proc.
                for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
                    fd = os.open(f"{pid}/{name}", os.O_WRONLY, dir_fd=proc_fd)
                    try:
                        os.write(fd, text.encode())
                    finally:
                        os.close(fd)
            except OSError as exc:
                msg = f"error: mapping the node's user namespace: {exc}"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            else:
                os.write(down_w, b"go")
                msg = replies.readline().strip()
    os.close(down_w)
    os.close(proc_fd)
    return _report(pid, msg)


def _at(dir_fd: int) -> Callable[[str, int], int]:
    return lambda path, flags: os.open(path, flags, dir_fd=dir_fd)


def _main_unprivileged(plan: dict[str, Any]) -> int:
    """Not root: a user namespace that maps only the caller, who becomes root in the node."""
    try:
        _userns(os.getuid(), os.getgid())
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID), "unshare(mount, uts, pid)")
    except (SetupError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            setup(plan)
            finish(plan)
        except Exception as exc:
            os.write(w, f"error: {exc}".replace("\n", " ").encode() + b"\n")
            os._exit(1)
        os.write(w, b"ok\n")
        os.close(w)
        _become_init()
    os.close(w)
    with os.fdopen(r, encoding="utf-8", errors="replace") as replies:
        msg = replies.readline().strip()
    return _report(pid, msg)


def _report(pid: int, msg: str) -> int:
    """Tell the lab the init's PID (or why there is none), then wait for the init to die."""
    if msg != "ok":
        print(json.dumps({"error": msg.removeprefix("error: ") or "node init died"}), flush=True)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return 1
    print(json.dumps({"pid": pid}), flush=True)
    sys.stdout.close()
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status) & 0xFF
        except InterruptedError:
            continue


def main() -> int:
    plan = json.load(sys.stdin)
    # Every node gets a user namespace: its capabilities never count outside the node.
    if os.geteuid() == 0:
        return _main_privileged(plan)
    return _main_unprivileged(plan)


if __name__ == "__main__":
    sys.exit(main())
