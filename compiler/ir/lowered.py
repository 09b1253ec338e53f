"""The lowered IR: the pipeline's IR after `lower-remote`, codegen's input.

It is the typed IR (compiler/ir/surface.py with `type` set on every
expression) minus `Remote` and the job builtins `get`, `state` and `cancel`
as calls, plus the four job operations below, which say exactly which
runtime call codegen emits. Each is a surface.Expr, so the generic printer
(compiler/ir/printer.py) and walkers (compiler/ir/walk.py) handle it.

Invariants (checked by compiler/ir/check.py:check_lowered): no Remote node
is left; every expression is typed; a StartJob's `ordinal` is the job's
1-based position among the job declarations in source order, and its
`arg_types` are its arguments' types, one per argument.
"""
from __future__ import annotations

from compiler.ir.surface import Expr, node, pos_field, type_field


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
