"""lower-remote: typed IR -> lowered IR (compiler/ir/lowered.py).

Makes every job operation explicit for codegen:

- `remote f(args)` (Remote) becomes StartJob carrying f's ordinal (its
  1-based position among the job declarations, in source order), its name,
  the arguments and their types;
- the builtin calls `get(j)`, `state(j)` and `cancel(j)` become ReapJob,
  JobStateOf and CancelJob on the handle expression, keeping the call's
  type and position (the builtin's name, where their runtime errors point).

A call is a builtin only when no function or job of that name exists (SPEC
section 1 forbids such a declaration, but the check costs nothing).
Everything else is rebuilt unchanged (untouched subtrees are shared).

Afterwards: no Remote node and no Call to get/state/cancel remains; every
expression is still typed.
"""
from __future__ import annotations

from compiler.ir import lowered as L
from compiler.ir.surface import Call, FuncDecl, Node, Program, Remote
from compiler.ir.walk import map_children

_JOB_BUILTINS = {"get": L.ReapJob, "state": L.JobStateOf, "cancel": L.CancelJob}


def run(prog: Program) -> Program:
    funcs = {d.name for d in prog.decls if isinstance(d, FuncDecl)}
    ordinals = {}
    for d in prog.decls:
        if isinstance(d, FuncDecl) and d.is_job:
            ordinals[d.name] = len(ordinals) + 1

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

    return rewrite(prog)
