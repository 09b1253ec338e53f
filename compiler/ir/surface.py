"""The surface IR: the program as written, produced by the `parse` pass.

Every node is frozen, keyword-only, and carries `pos` (ignored by equality).
Children are tuples. Expressions have a `type` field: None in the surface IR;
the `typecheck` pass fills it in on every expression (the typed IR is this
IR with every `type` set; compiler/passes/typecheck.py states its invariants).

Positions, where SPEC section 11 fixes them: a Binary's pos is its operator,
an Index's pos is its `[`, a Call's pos is the callee's name, an Append's
pos is its `::`, a Remote's pos is the `remote` keyword.
"""
from __future__ import annotations

from typing import Optional

import attrs

from compiler.errors import Pos
from compiler.ir.types import Type

node = attrs.frozen(kw_only=True)


def pos_field():
    return attrs.field(eq=False, repr=False)


@node
class Node:
    """Base of every IR node."""


@node
class Expr(Node):
    """Base of expressions; each has `type` (set by typecheck) and `pos`."""


@node
class Stmt(Node):
    """Base of statements."""


# ---------------------------------------------------------------- top level

@node
class Program(Node):
    decls: tuple  # of StructDecl | FuncDecl | MasterDecl, in source order
    pos: Pos = pos_field()


@node
class FieldDecl(Node):
    type: Type
    name: str
    pos: Pos = pos_field()


@node
class StructDecl(Node):
    name: str
    fields: tuple  # of FieldDecl
    pos: Pos = pos_field()


@node
class Param(Node):
    type: Type
    name: str
    pos: Pos = pos_field()


@node
class FuncDecl(Node):
    """A function, or a job when is_job (jobs are functions that may also
    run remotely)."""
    name: str
    params: tuple  # of Param
    ret: Type
    body: "Block"
    is_job: bool = False
    pos: Pos = pos_field()


@node
class MasterDecl(Node):
    body: "Block"
    pos: Pos = pos_field()


# ---------------------------------------------------------------- statements

@node
class Block(Stmt):
    stmts: tuple
    pos: Pos = pos_field()


@node
class VarDecl(Stmt):
    type: Type
    name: str
    init: Optional["Expr"] = None
    pos: Pos = pos_field()


@node
class Assign(Stmt):
    """`target op value` where op is one of = += -= *= /= %=.
    pos is the operator's position."""
    target: "Expr"
    op: str
    value: "Expr"
    pos: Pos = pos_field()


@node
class ExprStmt(Stmt):
    expr: "Expr"
    pos: Pos = pos_field()


@node
class If(Stmt):
    cond: "Expr"
    then: object  # a statement
    else_: object = None  # a statement or None
    pos: Pos = pos_field()


@node
class While(Stmt):
    cond: "Expr"
    body: object
    pos: Pos = pos_field()


@node
class For(Stmt):
    """`for (init; cond; step) body`; any of init, cond, step may be None.
    init is a VarDecl, Assign or ExprStmt; step an Assign or ExprStmt."""
    init: object
    cond: Optional["Expr"]
    step: object
    body: object
    pos: Pos = pos_field()


@node
class Return(Stmt):
    value: Optional["Expr"] = None
    pos: Pos = pos_field()


@node
class Break(Stmt):
    pos: Pos = pos_field()


@node
class Continue(Stmt):
    pos: Pos = pos_field()


@node
class Empty(Stmt):
    """The empty statement `;`."""
    pos: Pos = pos_field()


# ---------------------------------------------------------------- expressions

def type_field():
    return attrs.field(default=None)


@node
class IntLit(Expr):
    value: int
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class DoubleLit(Expr):
    value: float
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class BoolLit(Expr):
    value: bool
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class CharLit(Expr):
    value: int  # the byte, 0..255
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class StringLit(Expr):
    """A string literal's bytes (escapes decoded). Surface IR only:
    desugar-strings turns it into a CharVectorLit."""
    value: bytes
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class CharVectorLit(Expr):
    """A vector<char> constant: what a string literal becomes."""
    value: bytes
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class JobStateLit(Expr):
    value: str  # one of types.JOB_STATES
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Name(Expr):
    """A variable reference. After typecheck, `name` is the variable's unique
    name within its function (shadowing variables are renamed x.1, x.2...)."""
    name: str
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Call(Expr):
    """A call of a function, job (locally) or builtin, by name."""
    name: str
    args: tuple
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Remote(Expr):
    """`remote name(args)`: start job `name` on a slave."""
    name: str
    args: tuple
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Index(Expr):
    base: "Expr"
    index: "Expr"
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class FieldAccess(Expr):
    """`base->name`."""
    base: "Expr"
    name: str
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Unary(Expr):
    op: str  # "-", "!" or "~"
    operand: "Expr"
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Binary(Expr):
    op: str  # * / % + - << >> < <= > >= == != & ^ | && ||
    left: "Expr"
    right: "Expr"
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()


@node
class Append(Expr):
    """`target :: value`; target must be a vector lvalue."""
    target: "Expr"
    value: "Expr"
    type: Optional[Type] = type_field()
    pos: Pos = pos_field()

