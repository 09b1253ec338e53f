"""The lowered IR: the pipeline's IR after `lower-remote`, codegen's input.

It is the typed IR (compiler/ir/surface.py with `type` set on every
expression) minus `Remote` and the job builtins `get`, `state` and `cancel`
as calls, plus the four job operations below, which say exactly which
runtime call codegen emits, and the statement CancelCheck, where job code
polls for `cancel` (SPEC section 6). Each is a surface.Expr or Stmt, so the
generic printer (compiler/ir/printer.py, which prints `cancel-check`) and
walkers (compiler/ir/walk.py) handle it.

Invariants (compiler/ir/check.py:check_lowered, and check_cancel_checks
below): no Remote node is left; every expression is typed; a StartJob's
`ordinal` is the job's 1-based position among the job declarations in
source order, and its `arg_types` are its arguments' types, one per
argument; CancelCheck occurs only as the first statement of a loop body (a
Block) or of a function body, never in the master block, and only in
functions that a job reaches through calls (jobs included).
"""
from __future__ import annotations

from compiler.ir.surface import (Block, Expr, For, FuncDecl, MasterDecl,
                                 Stmt, While, node, pos_field, type_field)
from compiler.ir.walk import walk


@node
class StartJob(Expr):
    """`remote name(args)`: encode the arguments and start job number
    `ordinal` on a slave; yields a job<T> handle at once."""
    ordinal: int
    name: str
    args: tuple
    arg_types: tuple  # of types.Type, one per argument
    type: object = type_field()
    pos: object = pos_field()


@node
class ReapJob(Expr):
    """`get(handle)`: wait for the job and decode its result, of `type`
    (void for a job<void>). pos is the builtin's name."""
    handle: Expr
    type: object = type_field()
    pos: object = pos_field()


@node
class JobStateOf(Expr):
    """`state(handle)`: the job's jobstate now. pos is the builtin's name."""
    handle: Expr
    type: object = type_field()
    pos: object = pos_field()


@node
class CancelJob(Expr):
    """`cancel(handle)`: cancel the job; void. pos is the builtin's name."""
    handle: Expr
    type: object = type_field()
    pos: object = pos_field()


@node
class CancelCheck(Stmt):
    """Poll the slave thread's cancel flag: when the master cancelled the
    job this thread runs, abandon the job here (ms_cancel_point). Placed by
    lower-remote at the head of every loop body and at the entry of every
    function that may recurse, in code a job can reach; a no-op in the
    master, whose flag is always 0. pos is the loop's or the function's."""
    pos: object = pos_field()


def check_cancel_checks(prog) -> None:
    """Assert the CancelCheck invariants of the module docstring: in a
    function that a job reaches, every loop body is a Block whose first
    statement is a CancelCheck; nowhere else is there any (the entry checks
    of recursive functions are the only other ones)."""
    from compiler.ir.callgraph import job_reachable
    funcs = {d.name: d for d in prog.decls if isinstance(d, FuncDecl)}
    reached = job_reachable(funcs)
    for d in prog.decls:
        if not isinstance(d, (FuncDecl, MasterDecl)):
            continue
        checked = d.name in reached if isinstance(d, FuncDecl) else False
        where = d.name if isinstance(d, FuncDecl) else "the master block"
        placed = set()
        if checked and d.body.stmts and isinstance(d.body.stmts[0],
                                                   CancelCheck):
            placed.add(id(d.body.stmts[0]))
        for n in walk(d.body):
            if not isinstance(n, (While, For)):
                continue
            body = n.body
            first = (body.stmts[0] if isinstance(body, Block) and body.stmts
                     else None)
            if isinstance(first, CancelCheck):
                placed.add(id(first))
            assert isinstance(first, CancelCheck) == checked, (
                f"loop in {where} " + ("lacks a cancel-check" if checked
                                       else "has a cancel-check"))
        for n in walk(d.body):
            assert not isinstance(n, CancelCheck) or id(n) in placed, \
                f"cancel-check out of place in {where}"
