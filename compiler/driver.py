"""The `msc` command (also `python -m compiler`): flags, pipeline, output.

This is the only place that renders diagnostics and the only place that
touches the file system for the user: reading the source, writing dumps,
objects and the linked NAME-master / NAME-slave executables.

`msc run [-O0..-O3] [-v] prog.ms [MASTER-ARGS ...]` (a first word `run`;
`msc ./run` compiles a file named run) compiles into the cache of
compiler/runcache.py, unless a valid entry is there already, and then
replaces this process with the cached NAME-master (os.execv), passing it
every argument after the source verbatim: signals and the exit status are
the master's own.
"""
from __future__ import annotations

import argparse
import os
import sys

from compiler import runcache
from compiler.errors import CompileError, Pos
from compiler.pipeline import (
    PASS_NAMES, PASSES, PassFailure, Source, deep_call, run_pipeline)
from compiler.version import VersionError, compiler_version, protocol_version

RUN_USAGE = "msc run [-O0..-O3] [-v] prog.ms [MASTER-ARGS ...]"


class UsageError(Exception):
    """A bad command line: reported as `msc: error: ...`, exit status 2."""


class _ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_arg_parser() -> argparse.ArgumentParser:
    p = _ArgParser(
        prog="msc",
        description="Compile an M/s program into NAME-master and NAME-slave.",
        epilog=f"Compile (cached) and run: {RUN_USAGE} (msc run --help).")
    p.add_argument("source", nargs="?", help="the .ms program")
    p.add_argument("-o", dest="output", metavar="NAME",
                   help="write NAME-master and NAME-slave "
                        "(default: the source path without .ms)")
    p.add_argument("--dump-after", metavar="PASS", choices=PASS_NAMES,
                   help="print the IR after PASS to stdout and stop")
    p.add_argument("--list-passes", action="store_true",
                   help="list the pipeline's passes in order")
    p.add_argument("--emit", choices=("exe", "llvm", "obj"), default="exe",
                   help="llvm: write NAME.ll; obj: write NAME.o; "
                        "exe (default): link NAME-master and NAME-slave")
    p.add_argument("--time-passes", action="store_true",
                   help="print each pass's time to stderr")
    p.add_argument("--version", action="store_true",
                   help="print the compiler's and the protocol's versions")
    _add_opt_levels(p)
    return p


def _add_opt_levels(p: argparse.ArgumentParser) -> None:
    for level in range(4):
        p.add_argument(f"-O{level}", dest="opt", action="store_const",
                       const=level, help=f"optimization level {level}"
                       + (" (default)" if level == 2 else ""))
    p.set_defaults(opt=2)


def build_run_arg_parser() -> argparse.ArgumentParser:
    p = _ArgParser(
        prog="msc run", usage=RUN_USAGE,
        description="Compile an M/s program (cached) and run its master "
                    "with local slaves. Every argument after prog.ms goes "
                    "to NAME-master: its runtime options first, then the "
                    "program's arguments (after the first non-option, or "
                    "after --).")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say on stderr whether the cache held the program")
    _add_opt_levels(p)
    return p


def split_run_args(argv: list[str]) -> tuple[list[str], str | None,
                                             list[str]]:
    """(msc run's own options, the source, the master's arguments): the
    source is the first word that is not an option (None: there is none)."""
    for i, word in enumerate(argv):
        if not word.startswith("-") or word == "-":
            return argv[:i], word, argv[i + 1:]
    return argv, None, []


def render_error(pos: Pos, message: str, text: str | None) -> str:
    """FILE:LINE:COL: error: MSG, then the source line and a caret."""
    out = [f"{pos.file}:{pos.line}:{pos.col}: error: {message}"]
    if text is not None:
        lines = text.split("\n")
        if 1 <= pos.line <= len(lines):
            line = lines[pos.line - 1].rstrip("\r")
            # Control characters (a NUL, say) show as U+FFFD: one column
            # for one, so the caret stays under its character.
            out.append("".join("\ufffd" if (c < " " and c != "\t")
                               or c == "\x7f" else c for c in line))
            # Keep tabs so the caret lines up under the offending column.
            prefix = "".join(c if c == "\t" else " " for c in line[:pos.col - 1])
            out.append(prefix + "^")
    return "\n".join(out) + "\n"


BOM = "\ufeff"


class BadSource(CompileError):
    """A source file that is not UTF-8: located at its first bad byte, and
    carrying the text to show (each bad sequence as U+FFFD), since the
    pipeline never got a text to show."""

    def __init__(self, pos: Pos, message: str, shown: str):
        super().__init__(pos, message)
        self.shown = shown


def read_source(path: str) -> str:
    """The text of the source file, without a leading byte order mark
    (docs/language.md, "Lexical decisions"): positions count characters
    from the first one after it."""
    return decode_source(path, read_source_bytes(path))


def read_source_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def decode_source(path: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        shown = data.decode("utf-8", "replace")
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data[:e.start].count(b"\n") + 1
        col = len(data[line_start:e.start].decode("utf-8")) + 1
        if line == 1 and shown.startswith(BOM):
            shown = shown[1:]
            col -= 1
        raise BadSource(Pos(path, line, col),
                        f"source is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                        shown) from None
    return text[1:] if text.startswith(BOM) else text


def default_output_name(source: str) -> str:
    return source[:-3] if source.endswith(".ms") else source


def main(argv: list[str] | None = None) -> int:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        return _reporting_errors(lambda texts: _run(argv[1:], texts))
    return _reporting_errors(lambda texts: _compile(argv, texts))


def _reporting_errors(command) -> int:
    """Run command(texts), where texts[0] is set to the source text once
    read (for the caret under a compile error); map errors to statuses."""
    texts = [None]
    try:
        return command(texts)
    except UsageError as e:
        print(f"msc: error: {e}", file=sys.stderr)
        return 2
    except BadSource as e:
        sys.stderr.write(render_error(e.pos, e.message, e.shown))
        return 1
    except CompileError as e:
        sys.stderr.write(render_error(e.pos, e.message, texts[0]))
        return 1
    except PassFailure as e:
        print(f"msc: {e}", file=sys.stderr)
        return 1
    except (backend_errors(), runcache.CacheError, VersionError) as e:
        print(f"msc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _compile(argv: list[str], texts: list) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.version:
        print(f"msc {compiler_version()}\nprotocol {protocol_version()}")
        return 0
    if args.list_passes:
        print("\n".join(PASS_NAMES))
        return 0
    if args.source is None:
        raise UsageError("no input file (usage: msc prog.ms [-o NAME])")
    text = texts[0] = read_source(args.source)
    timings: dict = {}
    ir, spec = run_pipeline(Source(args.source, text),
                            stop_after=args.dump_after, timings=timings)
    if args.time_passes:
        for name, secs in timings.items():
            print(f"{name:18} {secs * 1000:8.2f} ms", file=sys.stderr)
    if args.dump_after:
        sys.stdout.write(deep_call(spec.printer, ir))
        return 0
    from compiler.codegen import backend
    name = args.output or default_output_name(args.source)
    if args.emit == "llvm":
        backend.write_llvm(ir, args.opt, name + ".ll")
    elif args.emit == "obj":
        backend.write_object(ir, args.opt, name + ".o")
    else:
        backend.build_executables(ir, args.opt, name)
    return 0


def _run(argv: list[str], texts: list) -> int:
    own, source, master_args = split_run_args(argv)
    args = build_run_arg_parser().parse_args(own)
    if source is None:
        raise UsageError(f"no input file (usage: {RUN_USAGE})")
    data = read_source_bytes(source)
    from compiler.codegen import backend
    root = runcache.cache_root()
    name = runcache.program_name(source)
    key = runcache.cache_key(source, data, args.opt, backend.runtime_dir())
    entry, broken = runcache.lookup(root, key, name)
    if entry is None:
        text = texts[0] = decode_source(source, data)
        ir, _ = run_pipeline(Source(source, text))
        entry = runcache.build(
            root, key, name,
            lambda out: backend.build_executables(ir, args.opt, out))
        runcache.prune(root)
        what = "rebuilt a broken entry" if broken else "compiled"
    else:
        what = "cache hit"
    if args.verbose:
        print(f"msc: run: {what}: {entry}", file=sys.stderr)
    cmd = runcache.master_command(entry, name, master_args)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(cmd[0], cmd)
    except OSError as e:
        raise runcache.CacheError(f"cannot run {cmd[0]}: {e.strerror}") \
            from None


def backend_errors():
    from compiler.codegen.backend import BackendError
    return BackendError
