"""lower-remote: typed, refcounted IR -> lowered IR (compiler/ir/lowered.py).

Makes every job operation explicit for codegen:

- `remote f(args)` (Remote) becomes StartJob carrying f's ordinal (its
  1-based position among the job declarations, in source order), its name,
  the arguments and their types;
- the builtin calls `get(j)`, `state(j)` and `cancel(j)` become ReapJob,
  JobStateOf and CancelJob on the handle expression, keeping the call's
  type and position (the builtin's name, where their runtime errors point);
- cancellation points (SPEC section 6: `cancel` stops a running job, even
  one in an endless loop): in every function that a job reaches through
  calls, jobs included, a CancelCheck becomes the first statement of every
  `while` and `for` body (a body that is not a Block is wrapped in one), so
  that every iteration polls once, whether it ends normally or by
  `continue`; and the first statement of the body of each such function
  that may recurse (its strongly connected component of the call graph has
  a cycle). Those are the only ways code can run without end, so a
  cancelled job reaches a check within one iteration or one call. Code that
  only the master runs (the master block, functions no job reaches) gets
  none; a function both sides reach polls in the master too, where the
  flag is always 0.

A call is a builtin only when no function or job of that name exists (SPEC
section 1 forbids such a declaration, but the check costs nothing).
Everything else is rebuilt unchanged (untouched subtrees are shared).

Afterwards: no Remote node and no Call to get/state/cancel remains; every
expression is still typed; CancelChecks stand exactly where
compiler/ir/lowered.py:check_cancel_checks says.
"""
from __future__ import annotations

import attrs

from compiler.builtins import TABLE as BUILTINS
from compiler.ir.callgraph import job_reachable, recursive_pairs
from compiler.ir import lowered as L
from compiler.ir.surface import (Block, Call, For, FuncDecl, Node, Program,
                                 Remote, While)
from compiler.ir.walk import map_children

# The IR nodes of this pass that builtins become (compiler/builtins.py).
_NODE_OF = {"reap-job": L.ReapJob, "job-state-of": L.JobStateOf,
            "cancel-job": L.CancelJob}
_JOB_BUILTINS = {b.name: _NODE_OF[b.lowering.name] for b in BUILTINS.values()
                 if b.lowering_by() == "lower-remote"}


def run(prog: Program) -> Program:
    funcs = {d.name: d for d in prog.decls if isinstance(d, FuncDecl)}
    ordinals = {}
    for d in prog.decls:
        if isinstance(d, FuncDecl) and d.is_job:
            ordinals[d.name] = len(ordinals) + 1
    polled = job_reachable(funcs)
    recursive = {a for a, _ in recursive_pairs(funcs)}

    def rewrite(n: Node) -> Node:
        n = map_children(n, rewrite)
        if isinstance(n, Remote):
            return L.StartJob(ordinal=ordinals[n.name], name=n.name,
                              args=n.args,
                              arg_types=tuple(a.type for a in n.args),
                              type=n.type, pos=n.pos)
        if (isinstance(n, Call) and n.name in _JOB_BUILTINS
                and n.name not in funcs and len(n.args) == 1):
            return _JOB_BUILTINS[n.name](handle=n.args[0], type=n.type,
                                         pos=n.pos)
        return n

    def add_checks(n: Node) -> Node:
        n = map_children(n, add_checks)
        if isinstance(n, (While, For)):
            return attrs.evolve(n, body=_prepend_check(n.body, n.pos))
        return n

    decls = []
    for d in prog.decls:
        d = rewrite(d)
        if isinstance(d, FuncDecl) and d.name in polled:
            body = add_checks(d.body)
            if d.name in recursive:
                body = _prepend_check(body, d.pos)
            d = attrs.evolve(d, body=body)
        decls.append(d)
    return attrs.evolve(prog, decls=tuple(decls))


def _prepend_check(body, pos) -> Block:
    """`body` as a Block that starts with a CancelCheck at `pos`."""
    check = L.CancelCheck(pos=pos)
    if isinstance(body, Block):
        return attrs.evolve(body, stmts=(check,) + body.stmts)
    return Block(stmts=(check, body), pos=body.pos)
