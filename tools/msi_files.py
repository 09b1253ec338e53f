"""The file builtins of SPEC 12.2 for the Python interpreters (tools/msi.py,
tests/vectors_interp.py): the same system calls' outcomes, and the same
messages, as runtime/c/files.c and master_files.c give.

Paths and contents are bytes. A failure raises FileFailure, whose `message`
is the runtime error's text (`cannot read 'P': REASON`, REASON being C's
strerror, which os.strerror is).
"""
from __future__ import annotations

import errno
import os
import stat

# As runtime/c/files.h: a string a job reads must fit a vector's u32 count.
MAX_READ = 2**32 - 1


class FileFailure(Exception):
    def __init__(self, verb: str, path: bytes, err: int):
        shown = path.decode("utf-8", "replace")
        super().__init__(f"cannot {verb} '{shown}': {os.strerror(err)}")
        self.message = str(self)


def _sys_path(verb: str, path: bytes) -> bytes:
    if b"\0" in path:
        raise FileFailure(verb, path, errno.EINVAL)
    return path


def read_file(path: bytes) -> bytes:
    p = _sys_path("read", path)
    try:
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise FileFailure("read", path, errno.EISDIR)
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_READ:
                raise FileFailure("read", path, errno.EFBIG)
            data = f.read(MAX_READ + 1)
    except OSError as e:
        raise FileFailure("read", path, e.errno) from None
    if len(data) > MAX_READ:
        raise FileFailure("read", path, errno.EFBIG)
    return data


def list_dir(path: bytes) -> list[bytes]:
    p = _sys_path("list", path)
    try:
        return sorted(os.listdir(p))
    except OSError as e:
        raise FileFailure("list", path, e.errno) from None


def write_file(path: bytes, data: bytes) -> None:
    """Atomically, as master_files.c does: a temporary file beside the
    target, synced, renamed over it; an existing file's permission bits
    are kept."""
    p = _sys_path("write", path)
    head, base = os.path.split(p)
    if not base:
        raise FileFailure("write", path, errno.EISDIR if p else errno.ENOENT)
    tmp = os.path.join(head, b"." + base[:64] + b"." + os.urandom(8).hex().encode()
                       + b".tmp")
    try:
        try:
            st = os.stat(p)
            mode = stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None
        except OSError:
            mode = None
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o666 if mode is None else mode)
    except OSError as e:
        raise FileFailure("write", path, e.errno) from None
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, p)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FileFailure("write", path, e.errno) from None
