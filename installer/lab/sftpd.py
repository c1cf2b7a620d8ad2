"""A small SFTP v3 server over stdin/stdout, for hosts without OpenSSH's sftp-server.

It runs inside a node (through nsenter, like every command), so it sees exactly
the node's files. Standard library only. Covers what scp/sftp clients and the
installer's uploads use: open/read/write/close, stat family, setstat, dirs,
remove, rename (+ posix-rename@openssh.com), symlinks, realpath, fsync, statvfs.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import struct
import sys
import time
from typing import Any, BinaryIO

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT = 1, 2, 3, 4, 5, 6, 7, 8
SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE, MKDIR, RMDIR = 9, 10, 11, 12, 13, 14, 15
REALPATH, STAT, RENAME, READLINK, SYMLINK = 16, 17, 18, 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED, EXTENDED_REPLY = 101, 102, 103, 104, 105, 200, 201
OK, EOF, NO_SUCH_FILE, PERMISSION_DENIED, FAILURE, OP_UNSUPPORTED = 0, 1, 2, 3, 4, 8
A_SIZE, A_UIDGID, A_PERMS, A_TIMES = 1, 2, 4, 8
F_READ, F_WRITE, F_APPEND, F_CREAT, F_TRUNC, F_EXCL = 1, 2, 4, 8, 0x10, 0x20
EXTENSIONS = (
    (b"posix-rename@openssh.com", b"1"),
    (b"fsync@openssh.com", b"1"),
    (b"statvfs@openssh.com", b"2"),
    (b"hardlink@openssh.com", b"1"),
)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u32(self) -> int:
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = struct.unpack_from(">Q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> bytes:
        n = self.u32()
        s = self.data[self.pos : self.pos + n]
        self.pos += n
        return s

    def attrs(self) -> dict[str, Any]:
        flags = self.u32()
        a: dict[str, Any] = {}
        if flags & A_SIZE:
            a["size"] = self.u64()
        if flags & A_UIDGID:
            a["uid"], a["gid"] = self.u32(), self.u32()
        if flags & A_PERMS:
            a["perms"] = self.u32()
        if flags & A_TIMES:
            a["atime"], a["mtime"] = self.u32(), self.u32()
        return a


def s(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def encode_attrs(st: os.stat_result) -> bytes:
    flags = A_SIZE | A_UIDGID | A_PERMS | A_TIMES
    return struct.pack(
        ">IQIIIII",
        flags,
        st.st_size,
        st.st_uid,
        st.st_gid,
        st.st_mode,
        int(st.st_atime),
        int(st.st_mtime),
    )


def longname(name: bytes, st: os.stat_result) -> bytes:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    when = time.strftime("%b %d %H:%M", time.localtime(st.st_mtime))
    line = (
        f"{stat.filemode(st.st_mode)} {st.st_nlink:>3} {user:<8} {group:<8} {st.st_size:>8} {when} "
    )
    return line.encode() + name


class Server:
    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp = inp
        self.out = out
        self.handles: dict[bytes, Any] = {}
        self.next = 0

    def send(self, kind: int, payload: bytes) -> None:
        body = bytes([kind]) + payload
        self.out.write(struct.pack(">I", len(body)) + body)
        self.out.flush()

    def status(self, rid: int, code: int, message: str = "") -> None:
        self.send(STATUS, struct.pack(">II", rid, code) + s(message.encode()) + s(b"en"))

    def error(self, rid: int, exc: OSError) -> None:
        import errno

        code = {
            errno.ENOENT: NO_SUCH_FILE,
            errno.EACCES: PERMISSION_DENIED,
            errno.EPERM: PERMISSION_DENIED,
        }
        self.status(rid, code.get(exc.errno or 0, FAILURE), exc.strerror or str(exc))

    def handle(self, obj: Any) -> bytes:
        self.next += 1
        h = str(self.next).encode()
        self.handles[h] = obj
        return h

    def read_packet(self) -> bytes | None:
        head = self.inp.read(4)
        if len(head) < 4:
            return None
        (n,) = struct.unpack(">I", head)
        data = b""
        while len(data) < n:
            chunk = self.inp.read(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def serve(self) -> None:
        while (packet := self.read_packet()) is not None:
            kind, r = packet[0], Reader(packet[1:])
            if kind == INIT:
                self.send(
                    VERSION, struct.pack(">I", 3) + b"".join(s(k) + s(v) for k, v in EXTENSIONS)
                )
                continue
            rid = r.u32()
            try:
                self.dispatch(kind, rid, r)
            except OSError as exc:
                self.error(rid, exc)
            except (struct.error, KeyError, ValueError):
                self.status(rid, FAILURE, "bad request")

    def _setattrs(self, path: bytes | int, a: dict[str, Any]) -> None:
        if "size" in a:
            os.truncate(path, a["size"])
        if "perms" in a:
            os.chmod(path, a["perms"] & 0o7777)
        if "uid" in a:
            os.chown(path, a["uid"], a["gid"])
        if "atime" in a:
            os.utime(path, (a["atime"], a["mtime"]))

    def dispatch(self, kind: int, rid: int, r: Reader) -> None:
        if kind == OPEN:
            path, pflags, a = r.string(), r.u32(), r.attrs()
            flags = (
                os.O_RDWR
                if pflags & F_READ and pflags & F_WRITE
                else os.O_WRONLY
                if pflags & F_WRITE
                else os.O_RDONLY
            )
            flags |= (os.O_APPEND if pflags & F_APPEND else 0) | (
                os.O_CREAT if pflags & F_CREAT else 0
            )
            flags |= (os.O_TRUNC if pflags & F_TRUNC else 0) | (os.O_EXCL if pflags & F_EXCL else 0)
            fd = os.open(path, flags, a.get("perms", 0o666) & 0o7777)
            self.send(HANDLE, struct.pack(">I", rid) + s(self.handle(fd)))
        elif kind == CLOSE:
            obj = self.handles.pop(r.string())
            if isinstance(obj, int):
                os.close(obj)
            self.status(rid, OK)
        elif kind == READ:
            fd, offset, length = self.handles[r.string()], r.u64(), r.u32()
            data = os.pread(fd, min(length, 1 << 18), offset)
            if data:
                self.send(DATA, struct.pack(">I", rid) + s(data))
            else:
                self.status(rid, EOF, "End of file")
        elif kind == WRITE:
            fd, offset, data = self.handles[r.string()], r.u64(), r.string()
            os.pwrite(fd, data, offset)
            self.status(rid, OK)
        elif kind in (LSTAT, STAT, FSTAT):
            if kind == FSTAT:
                st = os.fstat(self.handles[r.string()])
            else:
                path = r.string()
                st = os.lstat(path) if kind == LSTAT else os.stat(path)
            self.send(ATTRS, struct.pack(">I", rid) + encode_attrs(st))
        elif kind in (SETSTAT, FSETSTAT):
            target = self.handles[r.string()] if kind == FSETSTAT else r.string()
            self._setattrs(target, r.attrs())
            self.status(rid, OK)
        elif kind == OPENDIR:
            path = r.string()
            names = [b".", b"..", *sorted(os.listdir(path))]
            self.send(HANDLE, struct.pack(">I", rid) + s(self.handle((path, names))))
        elif kind == READDIR:
            h = r.string()
            path, names = self.handles[h]
            if not names:
                self.status(rid, EOF, "End of directory")
                return
            batch, rest = names[:100], names[100:]
            self.handles[h] = (path, rest)
            body = b""
            for name in batch:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(path, name))
                    body += s(name) + s(longname(name, st)) + encode_attrs(st)
                    continue
                body += s(name) + s(name) + struct.pack(">I", 0)
            self.send(NAME, struct.pack(">II", rid, len(batch)) + body)
        elif kind == REMOVE:
            os.unlink(r.string())
            self.status(rid, OK)
        elif kind == MKDIR:
            path, a = r.string(), r.attrs()
            os.mkdir(path, a.get("perms", 0o777) & 0o7777)
            self.status(rid, OK)
        elif kind == RMDIR:
            os.rmdir(r.string())
            self.status(rid, OK)
        elif kind == REALPATH:
            path = r.string() or b"."
            real = os.path.realpath(path)
            self.send(NAME, struct.pack(">II", rid, 1) + s(real) + s(real) + struct.pack(">I", 0))
        elif kind == RENAME:
            old, new = r.string(), r.string()
            if os.path.lexists(new):
                self.status(rid, FAILURE, "File exists")
                return
            os.rename(old, new)
            self.status(rid, OK)
        elif kind == READLINK:
            target = os.readlink(r.string())
            self.send(
                NAME, struct.pack(">II", rid, 1) + s(target) + s(target) + struct.pack(">I", 0)
            )
        elif kind == SYMLINK:
            # OpenSSH's sftp-server takes (target, link) in this order, swapped from the draft.
            target, link = r.string(), r.string()
            os.symlink(target, link)
            self.status(rid, OK)
        elif kind == EXTENDED:
            self.extended(rid, r.string(), r)
        else:
            self.status(rid, OP_UNSUPPORTED, "Operation unsupported")

    def extended(self, rid: int, name: bytes, r: Reader) -> None:
        if name == b"posix-rename@openssh.com":
            os.replace(r.string(), r.string())
            self.status(rid, OK)
        elif name == b"hardlink@openssh.com":
            old, new = r.string(), r.string()
            os.link(old, new)
            self.status(rid, OK)
        elif name == b"fsync@openssh.com":
            os.fsync(self.handles[r.string()])
            self.status(rid, OK)
        elif name == b"statvfs@openssh.com":
            v = os.statvfs(r.string())
            payload = struct.pack(
                ">QQQQQQQQQQQ", v.f_bsize, v.f_frsize, v.f_blocks, v.f_bfree, v.f_bavail,
                v.f_files, v.f_ffree, v.f_favail, 0, v.f_flag, v.f_namemax,
            )  # fmt: skip
            self.send(EXTENDED_REPLY, struct.pack(">I", rid) + payload)
        else:
            self.status(rid, OP_UNSUPPORTED, "Operation unsupported")


def main() -> None:
    os.chdir(os.environ.get("HOME", "/root"))
    Server(sys.stdin.buffer, sys.stdout.buffer).serve()


if __name__ == "__main__":
    main()
