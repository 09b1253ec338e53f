"""The back end of msc: LLVM optimization, object emission, and linking
NAME-master and NAME-slave against the runtime libraries.

Input is codegen's llvmlite ir.Module. Steps:
- parse and verify it with LLVM (a failure is a compiler bug);
- optimize with the new pass manager's default pipeline at -O1..-O3
  (-O0 runs no optimization);
- emit a position-independent object for the host triple, generic CPU (the
  slaves may run on other machines of the same architecture);
- link it twice with `cc` (or $CC): with libmsmaster.a into NAME-master and
  with libmsslave.a into NAME-slave, plus the flags of the runtime's
  ms-link-flags file (-lcrypto -lpthread -lm when it has none).

Outputs are written to temporary files beside their destination and renamed
into place, so a failed step never leaves a half-written file behind.

The runtime libraries are found, in order, in (1) $MS_RUNTIME_DIR; (2) a
source checkout (the directory above the `compiler` package holds
runtime/c/Makefile): `make -s -C <repo>/runtime/c OUT=<repo>/build`, cheap
when up to date; (3) an installed package: the C sources packaged as
compiler/runtime_src/ are built once into a per-user cache directory keyed
by a hash of the sources ($XDG_CACHE_HOME or ~/.cache, then
ms-lang/<hash>/), atomically.

Every failure is a BackendError with a one-line message; the driver prints
it as `msc: error: ...` and exits 1.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import llvmlite.binding as llvm

LIBS = ("libmsmaster.a", "libmsslave.a")
SYSTEM_LIBS = ("-lcrypto", "-lpthread", "-lm")


class BackendError(Exception):
    """A failure after the compiler proper: LLVM, the runtime or the linker."""


# ------------------------------------------------------------------ LLVM

_initialized = False


def _init_llvm() -> None:
    global _initialized  # one-time process-wide LLVM target registration
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized = True


def _target_machine(opt_level: int):
    _init_llvm()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(opt=opt_level, reloc="pic",
                                        codemodel="default")


def optimize(module, opt_level: int):
    """Parse, verify and optimize codegen's module; a binding ModuleRef
    targeted at the host."""
    if opt_level not in (0, 1, 2, 3):
        raise BackendError(f"invalid optimization level {opt_level}")
    tm = _target_machine(opt_level)
    try:
        ref = llvm.parse_assembly(str(module))
        ref.verify()
    except RuntimeError as e:
        raise BackendError("internal error: invalid LLVM module: "
                           + " ".join(str(e).split())) from None
    ref.triple = tm.triple
    ref.data_layout = str(tm.target_data)
    if opt_level > 0:
        pto = llvm.PipelineTuningOptions(speed_level=opt_level)
        pb = llvm.PassBuilder(tm, pto)
        pb.getModulePassManager().run(ref, pb)
    return ref, tm


def _atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory,
                                   prefix=f".{os.path.basename(path)}.")
    except OSError as e:
        raise BackendError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise BackendError(f"cannot write {path}: {e.strerror}") from None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_llvm(module, opt_level: int, path: str) -> None:
    """Write the (optimized) module's LLVM IR text to `path`."""
    ref, _ = optimize(module, opt_level)
    _atomic_write(path, str(ref).encode("utf-8"))


def object_code(module, opt_level: int) -> bytes:
    ref, tm = optimize(module, opt_level)
    try:
        return tm.emit_object(ref)
    except RuntimeError as e:
        raise BackendError("internal error: LLVM could not emit an object: "
                           + " ".join(str(e).split())) from None


def write_object(module, opt_level: int, path: str) -> None:
    """Write the module as an object file (for the host) to `path`."""
    _atomic_write(path, object_code(module, opt_level))


# ------------------------------------------------------------------ linking

def _cc() -> list[str]:
    cc = shlex.split(os.environ.get("CC", "") or "cc")
    if shutil.which(cc[0]) is None:
        raise BackendError(f"cannot find the C compiler '{cc[0]}' to link "
                           "with (install one, or set CC)")
    return cc


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def link_flags(runtime: str) -> list[str]:
    """The system libraries to link with: the runtime directory's
    ms-link-flags file when it has one (a sanitizer build adds its flags
    there), else SYSTEM_LIBS."""
    path = os.path.join(runtime, "ms-link-flags")
    try:
        with open(path, encoding="utf-8") as f:
            return shlex.split(f.read())
    except FileNotFoundError:
        return list(SYSTEM_LIBS)
    except (OSError, ValueError) as e:
        raise BackendError(f"cannot read {path}: {e}") from None


def _link(cc: list[str], obj: str, lib: str, out: str,
          flags: list[str]) -> None:
    directory = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix=f".{os.path.basename(out)}.")
    os.close(fd)
    cmd = cc + ["-o", tmp, obj, lib, *flags]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        _remove(tmp)
        raise BackendError(f"cannot run the linker {cc[0]}: {e}") from None
    if proc.returncode != 0:
        _remove(tmp)
        detail = _first_line(proc.stderr) or f"exit status {proc.returncode}"
        raise BackendError(f"linking {out} failed: {detail}")
    try:
        os.replace(tmp, out)
    except OSError as e:
        _remove(tmp)
        raise BackendError(f"cannot write {out}: {e.strerror}") from None


def build_executables(module, opt_level: int, name: str) -> None:
    """Write NAME-master and NAME-slave."""
    obj_bytes = object_code(module, opt_level)
    runtime = runtime_dir()
    cc = _cc()
    flags = link_flags(runtime)
    out_dir = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(out_dir):
        raise BackendError(f"cannot write {name}-master: directory "
                           f"{out_dir} does not exist")
    with tempfile.TemporaryDirectory(prefix="msc-") as tmp:
        obj = os.path.join(tmp, "prog.o")
        with open(obj, "wb") as f:
            f.write(obj_bytes)
        for lib, role in zip(LIBS, ("master", "slave")):
            _link(cc, obj, os.path.join(runtime, lib), f"{name}-{role}",
                  flags)


# ------------------------------------------------------------------ runtime

def _has_libs(directory: Path) -> bool:
    return all((directory / lib).is_file() for lib in LIBS)


def _make(args: list[str], what: str) -> None:
    make = shutil.which("make")
    if make is None:
        raise BackendError(f"cannot build the runtime ({what}): "
                           "'make' is not installed")
    try:
        proc = subprocess.run([make, *args], capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendError(f"cannot build the runtime ({what}): {e}") from None
    if proc.returncode != 0:
        detail = _first_line(proc.stderr) or _first_line(proc.stdout) \
            or f"exit status {proc.returncode}"
        raise BackendError(f"building the runtime ({what}) failed: {detail}")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(base) / "ms-lang"


def _sources_hash(src: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in src.rglob("*") if q.is_file()):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(src).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _build_cached(src: Path) -> Path:
    """Build the packaged runtime sources once per content into the cache."""
    cache = _cache_root()
    target = cache / _sources_hash(src)
    if _has_libs(target):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    except OSError as e:
        raise BackendError(f"cannot create the runtime cache {cache}: "
                           f"{e.strerror}") from None
    try:
        shutil.copytree(src, work / "src")
        _make(["-s", "-C", str(work / "src"), f"OUT={work / 'out'}"],
              "packaged sources")
        if not _has_libs(work / "out"):
            raise BackendError("building the runtime (packaged sources) "
                               "produced no libmsmaster.a/libmsslave.a")
        try:
            os.rename(work / "out", target)
        except OSError:
            if not _has_libs(target):       # not a concurrent build's win
                raise BackendError(f"cannot install the runtime into {target}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def runtime_dir() -> str:
    """The directory holding libmsmaster.a and libmsslave.a (see module
    docstring for the search order)."""
    env = os.environ.get("MS_RUNTIME_DIR")
    if env:
        if not _has_libs(Path(env)):
            raise BackendError(f"MS_RUNTIME_DIR={env} does not contain "
                               "libmsmaster.a and libmsslave.a")
        return env
    package = Path(__file__).resolve().parents[1]     # compiler/
    repo = package.parent
    if (repo / "runtime" / "c" / "Makefile").is_file():
        out = repo / "build"
        try:
            out.mkdir(exist_ok=True)
            lock = open(out / ".make.lock", "w")
        except OSError as e:
            raise BackendError(f"cannot create {out}: {e.strerror}") from None
        with lock:
            # Several msc processes may build at once: one make at a time.
            fcntl.flock(lock, fcntl.LOCK_EX)
            _make(["-s", "-C", str(repo / "runtime" / "c"), f"OUT={out}"],
                  "runtime/c")
        if not _has_libs(out):
            raise BackendError(f"building the runtime produced no "
                               f"libmsmaster.a/libmsslave.a in {out}")
        return str(out)
    src = package / "runtime_src"
    if (src / "Makefile").is_file():
        return str(_build_cached(src))
    raise BackendError("cannot find the M/s runtime: set MS_RUNTIME_DIR to "
                       "a directory with libmsmaster.a and libmsslave.a")
