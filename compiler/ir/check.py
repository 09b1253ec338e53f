"""Invariant checkers, one per IR, run by the pipeline after every pass.

They assert what a pass promises its successor; a failure is a compiler bug
(reported as an internal error naming the pass), never a user error.
"""
from __future__ import annotations

from compiler.ir import types as T
from compiler.ir.surface import (CharVectorLit, Expr, Program, StringLit)
from compiler.ir.walk import walk


def check_surface(prog) -> None:
    assert isinstance(prog, Program), "parse must produce a Program"
    for n in walk(prog):
        if isinstance(n, Expr):
            assert n.type is None, f"surface expression already typed: {n}"


def _types_in(node):
    import attrs
    for f in attrs.fields(type(node)):
        v = getattr(node, f.name)
        if isinstance(v, T.Type):
            yield v


def _mentions_string(t) -> bool:
    if isinstance(t, T.StringType):
        return True
    if isinstance(t, T.VectorType):
        return _mentions_string(t.elem)
    if isinstance(t, T.JobType):
        return _mentions_string(t.result)
    return False


def check_desugared(prog) -> None:
    assert isinstance(prog, Program)
    for n in walk(prog):
        assert not isinstance(n, StringLit), f"string literal left: {n}"
        for t in _types_in(n):
            assert not _mentions_string(t), f"string type left in {n}"


def check_typed(prog) -> None:
    check_desugared(prog)
    for n in walk(prog):
        if isinstance(n, Expr):
            assert n.type is not None, f"untyped expression after typecheck: {n}"
            assert not _mentions_string(n.type)
        if isinstance(n, CharVectorLit):
            assert n.type == T.STRING


def check_lowered_vectors(prog) -> None:
    from compiler.ir import vectors
    check_typed(prog)
    vectors.check_lowered_vectors(prog)


def check_bounds_eliminated(prog) -> None:
    from compiler.ir import vectors
    check_typed(prog)
    vectors.check_lowered_vectors(prog, proven_ok=True)


def check_refcounted(prog) -> None:
    from compiler.ir import vectors
    check_typed(prog)
    vectors.check_refcounted(prog)


def check_lowered(prog) -> None:
    from compiler.ir import lowered, vectors
    from compiler.ir.surface import Remote
    check_typed(prog)
    vectors.check_refcounted(prog)
    lowered.check_cancel_checks(prog)
    for n in walk(prog):
        assert not isinstance(n, Remote), f"remote call left after lower-remote: {n}"


def check_llvm(module) -> None:
    import llvmlite.binding as llvm
    llvm.parse_assembly(str(module)).verify()
