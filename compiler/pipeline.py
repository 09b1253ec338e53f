"""The pass pipeline: an ordered list of named passes, each with a printer.

`--list-passes` and `--dump-after` read PASSES. Every pass is a pure function
from one IR to the next; `parse` alone takes the source text. After each pass
the pipeline runs that IR's checker (cheap invariant assertions), so a pass
that breaks an invariant is caught at its own boundary and named.
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import Callable

import attrs

from compiler.ir import check
from compiler.ir.printer import format_program


@attrs.frozen
class PassSpec:
    name: str            # the CLI name, e.g. "lower-vectors"
    module: str          # compiler.passes.<module>, which defines run()
    printer: Callable    # IR -> text, for --dump-after
    checker: Callable    # IR -> None; raises AssertionError on a broken invariant

    def run(self, ir):
        mod = importlib.import_module(f"compiler.passes.{self.module}")
        return mod.run(ir)


def _llvm_text(module) -> str:
    return str(module)


PASSES = (
    PassSpec("parse", "parse", format_program, check.check_surface),
    PassSpec("desugar-strings", "desugar_strings", format_program, check.check_desugared),
    PassSpec("resolve-structs", "resolve_structs", format_program, check.check_desugared),
    PassSpec("typecheck", "typecheck", format_program, check.check_typed),
    PassSpec("lower-vectors", "lower_vectors", format_program, check.check_lowered_vectors),
    PassSpec("eliminate-bounds-checks", "eliminate_bounds_checks", format_program,
             check.check_bounds_eliminated),
    PassSpec("insert-refcounts", "insert_refcounts", format_program, check.check_refcounted),
    PassSpec("lower-remote", "lower_remote", format_program, check.check_lowered),
    PassSpec("codegen", "codegen", _llvm_text, check.check_llvm),
)

PASS_NAMES = tuple(p.name for p in PASSES)


class PassFailure(Exception):
    """An unexpected exception inside a pass: a compiler bug, named by pass."""

    def __init__(self, pass_name: str, error: BaseException):
        super().__init__(f"internal error in pass {pass_name}: "
                         f"{type(error).__name__}: {error}")
        self.pass_name = pass_name
        self.error = error


@attrs.frozen
class Source:
    """What the parse pass reads: the file's name (as given) and its text."""
    path: str
    text: str


# The passes, checkers and printers recurse over the IR tree, which is as
# deep as the program nests: a 20,000-term `1+1+...` is 20,000 levels, an
# `else if` chain one level per branch. They run on a thread with a stack
# big enough for RECURSION_LIMIT Python frames (each level of the IR costs a
# few; parse bounds the depth with MAX_DEPTH so the limit is never reached).
# The stack is reserved address space: only the pages a deep program
# touches are ever committed.
RECURSION_LIMIT = 400_000
STACK_BYTES = 1 << 30


def deep_call(fn, *args):
    """fn(*args) on a thread whose stack and recursion limit allow deeply
    nested IR; its exception, if any, is raised here."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = e

    old_limit = sys.getrecursionlimit()
    old_stack = threading.stack_size(STACK_BYTES)
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    try:
        # A daemon, so that ^C in the caller's join ends the process.
        worker = threading.Thread(target=target, name="msc-deep", daemon=True)
        worker.start()
    finally:
        threading.stack_size(old_stack)
    try:
        worker.join()
    finally:
        sys.setrecursionlimit(old_limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_pipeline(source: Source, stop_after: str | None = None,
                 timings: dict | None = None):
    """Run the passes in order, up to and including `stop_after` (on a
    thread with a deep stack: deep_call).

    CompileError propagates unchanged; any other exception is wrapped in a
    PassFailure naming the pass.
    """
    return deep_call(_run_passes, source, stop_after, timings)


def _run_passes(source: Source, stop_after: str | None, timings: dict | None):
    from compiler.errors import CompileError
    ir = source
    for spec in PASSES:
        start = time.perf_counter()
        try:
            ir = spec.run(ir)
            spec.checker(ir)
        except CompileError:
            raise
        except Exception as e:  # noqa: BLE001 - reported as a compiler bug
            raise PassFailure(spec.name, e) from e
        if timings is not None:
            timings[spec.name] = time.perf_counter() - start
        if spec.name == stop_after:
            return ir, spec
    return ir, PASSES[-1]
