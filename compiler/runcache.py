"""The cache of `msc run`: one compiled program per entry, found by a key.

An entry is a directory $XDG_CACHE_HOME/ms-lang/run/<key>/ (or
~/.cache/ms-lang/run/<key>/) holding NAME-master, NAME-slave and a manifest
with the SHA-256 of both. The key is a SHA-256 over everything that can
change the executables: the source path as given (runtime errors print it)
and the source bytes, the compiler's version and every file of the compiler
package, the runtime libraries and link flags it links with, $CC, and the
optimization level.

Safety under concurrent runs: an entry is built in a temporary directory
beside the entries (.tmp-*) and renamed into place in one step, so a reader
sees a complete entry or none. When two runs race, the loser finds the
winner's entry and uses it. An entry is checked against its manifest on
every use; a partial or corrupted one is moved aside and rebuilt.

Bounded size: a use touches the entry's mtime; after each build the cache
keeps the KEEP_ENTRIES most recently used entries and removes the rest,
and removes temporary directories older than an hour (a killed build's).
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from compiler.version import PACKAGE, compiler_version

KEEP_ENTRIES = 32
STALE_SECONDS = 3600
MANIFEST = "manifest"
MANIFEST_HEADER = "ms-lang run cache entry 1"
RUNTIME_FILES = ("libmsmaster.a", "libmsslave.a", "ms-link-flags")
ROLES = ("master", "slave")


class CacheError(Exception):
    """The cache cannot be used: reported as `msc: error: ...`, exit 1."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(base) / "ms-lang" / "run"


def _feed(h, label: str, data: bytes) -> None:
    """Length-prefixed, so no two different field lists hash alike."""
    h.update(f"{label} {len(data)}\n".encode() + data)


def _tree_files(directory: Path):
    for p in sorted(directory.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts \
                and "runtime_src" not in p.relative_to(directory).parts:
            yield p


def compiler_digest(package: Path = PACKAGE) -> str:
    """A digest of every file of the compiler package (its .py files and
    grammar), so that any edit to the compiler invalidates the cache. The
    packaged runtime sources are left to the libraries' digest."""
    h = hashlib.sha256()
    for p in _tree_files(package):
        _feed(h, p.relative_to(package).as_posix(), p.read_bytes())
    return h.hexdigest()


def cache_key(source_path: str, source: bytes, opt_level: int,
              runtime: str) -> str:
    h = hashlib.sha256()
    _feed(h, "compiler-version", compiler_version().encode())
    _feed(h, "compiler", compiler_digest().encode())
    for name in RUNTIME_FILES:
        path = os.path.join(runtime, name)
        try:
            with open(path, "rb") as f:
                _feed(h, name, f.read())
        except FileNotFoundError:
            _feed(h, name + " (absent)", b"")
        except OSError as e:
            raise CacheError(f"cannot read {path}: {e.strerror}") from None
    _feed(h, "cc", os.environ.get("CC", "").encode())
    _feed(h, "opt", str(opt_level).encode())
    _feed(h, "path", source_path.encode())
    _feed(h, "source", source)
    return h.hexdigest()[:32]


def program_name(source_path: str) -> str:
    """NAME of the cached NAME-master: the source's file name without .ms."""
    base = os.path.basename(source_path)
    base = base[:-3] if base.endswith(".ms") else base
    return base or "prog"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest_text(entry: Path, name: str) -> str:
    lines = [MANIFEST_HEADER]
    for role in ROLES:
        exe = f"{name}-{role}"
        lines.append(f"{_sha256_file(entry / exe)}  {exe}")
    return "\n".join(lines) + "\n"


def entry_valid(entry: Path, name: str) -> bool:
    """The entry holds both executables, unchanged since they were built."""
    try:
        manifest = (entry / MANIFEST).read_text(encoding="utf-8")
        for role in ROLES:
            if not os.access(entry / f"{name}-{role}", os.X_OK):
                return False
        return manifest == _manifest_text(entry, name)
    except (OSError, UnicodeDecodeError):
        return False


def lookup(root: Path, key: str, name: str) -> tuple[Path | None, bool]:
    """(the valid entry for key or None, whether a broken entry was found)."""
    entry = root / key
    if not entry.exists():
        return None, False
    if not entry_valid(entry, name):
        return None, True
    try:
        os.utime(entry)                     # most recently used
    except OSError:
        pass
    return entry, False


def _discard(path: Path) -> None:
    """Move path aside in one step, then delete it: a concurrent reader
    never sees it half-deleted under its own name."""
    trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=path.parent))
    try:
        os.rename(path, trash / "x")
    except FileNotFoundError:
        pass
    except OSError as e:
        shutil.rmtree(trash, ignore_errors=True)
        raise CacheError(f"cannot remove the cache entry {path}: "
                         f"{e.strerror}") from None
    shutil.rmtree(trash, ignore_errors=True)


def build(root: Path, key: str, name: str,
          write_executables: Callable[[str], None]) -> Path:
    """Build the entry for key with write_executables(ROOT/.tmp-*/NAME),
    which writes NAME-master and NAME-slave, and install it atomically.
    Returns the installed entry (ours, or a concurrent run's)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError as e:
        raise CacheError(f"cannot create the run cache {root}: "
                         f"{e.strerror}") from None
    entry = root / key
    try:
        write_executables(str(work / name))
        (work / MANIFEST).write_text(_manifest_text(work, name),
                                     encoding="utf-8")
        for _ in range(3):
            try:
                os.rename(work, entry)
                return entry
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise CacheError(f"cannot install {entry}: "
                                     f"{e.strerror}") from None
            if entry_valid(entry, name):
                return entry                # a concurrent run's, as good
            _discard(entry)                 # broken: replace it
        raise CacheError(f"cannot install {entry}: it keeps changing")
    except OSError as e:
        raise CacheError(f"cannot write the cache entry {work}: "
                         f"{e.strerror}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prune(root: Path, keep: int = KEEP_ENTRIES,
          now: float | None = None) -> None:
    """Keep the `keep` most recently used entries; drop stale temporaries."""
    now = time.time() if now is None else now
    entries = []
    try:
        children = list(root.iterdir())
    except OSError:
        return
    for p in children:
        try:
            mtime = p.stat().st_mtime
        except OSError:
            continue
        if p.name.startswith("."):
            if now - mtime > STALE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        elif p.is_dir():
            entries.append((mtime, p))
    entries.sort(reverse=True)
    for _, p in entries[keep:]:
        try:
            _discard(p)
        except CacheError:
            pass                            # another run may be removing it


def master_command(entry: Path, name: str, args: list[str]) -> list[str]:
    """The cached master's command line: every argument after the source is
    the master's, verbatim (SPEC 12.1 splits runtime options from the
    program's arguments)."""
    return [str(entry / f"{name}-master"), *args]
