"""Counted loops: which `for` loops count an int variable up by one to an
invariant bound, and what a loop's parts change. Read by
eliminate-bounds-checks (on the vector-lowered IR) and by codegen (on the
lowered IR, to poll for cancel once per chunk of iterations); both IRs
spell variables, stores and appends the same way (compiler/ir/vectors.py).
"""
from __future__ import annotations

import attrs

from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.surface import (Assign, Binary, For, IntLit, Name, Unary,
                                 VarDecl)
from compiler.ir.walk import walk


class LoopEffects:
    """What a loop's condition, body and step change: the variables they
    assign (the step itself aside) and declare, and the vector variables
    whose length they may change (a store, store-op or push on the
    variable itself; stores to its elements keep its length)."""

    def __init__(self, loop: For, var: str):
        self.var = var
        self.assigned: set = set()
        self.declared: set = set()
        self.resized: set = set()
        for part in (loop.cond, loop.body, loop.step):
            for n in walk(part):
                if isinstance(n, Assign) and isinstance(n.target, Name):
                    if n is not loop.step:
                        self.assigned.add(n.target.name)
                elif isinstance(n, VarDecl):
                    self.declared.add(n.name)
                elif isinstance(n, (V.Store, V.StoreOp, V.VecPush)) \
                        and isinstance(n.place, V.VarAddr):
                    self.resized.add(n.place.name)

    def invariant(self, e) -> bool:
        """Whether e is pure, cannot fail, and has one value in the loop."""
        if isinstance(e, IntLit):
            return True
        if isinstance(e, Name):
            return (e.type == T.INT and e.name != self.var
                    and e.name not in self.assigned
                    and e.name not in self.declared)
        if isinstance(e, Binary) and e.op in ("+", "-", "*"):
            return self.invariant(e.left) and self.invariant(e.right)
        if isinstance(e, Unary) and e.op == "-":
            return self.invariant(e.operand)
        if isinstance(e, V.VecLen):
            return (isinstance(e.vec, Name)
                    and isinstance(e.vec.type, T.VectorType)
                    and self.steady(e.vec.name))
        return False

    def steady(self, vec: str) -> bool:
        """Whether the loop keeps vector variable vec and its length."""
        return (vec not in self.resized and vec not in self.declared
                and vec not in self.assigned)



@attrs.frozen
class Counted:
    """`for (int var = start; var OP end; var += step)` (OP `<` or `<=`),
    where nothing in the loop but its step assigns var, and `end` and
    `step` are invariant (LoopEffects.invariant); `step` is the int literal
    1 unless counted() was asked for any step. Nothing says step > 0 or
    that var cannot wrap past MAX: users test what they need."""
    var: str
    start: object
    op: str
    end: object
    step: object
    effects: LoopEffects


def counted(loop: For, any_step: bool = False) -> Counted | None:
    """The loop's Counted form, or None when it is not a counted loop (by
    one, or by any invariant step when `any_step`)."""
    init, step, cond = loop.init, loop.step, loop.cond
    if not (isinstance(init, VarDecl) and init.type == T.INT
            and init.init is not None):
        return None
    var = init.name
    if not (isinstance(step, Assign) and isinstance(step.target, Name)
            and step.target.name == var):
        return None
    if step.op == "+=":
        by = step.value
    elif (step.op == "=" and isinstance(step.value, Binary)
          and step.value.op == "+" and is_name(step.value.left, var)):
        by = step.value.right
    else:
        return None
    if not (is_lit(by, 1) or any_step):
        return None
    if not (isinstance(cond, Binary) and cond.op in ("<", "<=")
            and is_name(cond.left, var)):
        return None
    effects = LoopEffects(loop, var)
    if var in effects.assigned or var in effects.declared \
            or not effects.invariant(cond.right) or not effects.invariant(by):
        return None
    return Counted(var, init.init, cond.op, cond.right, by, effects)


def is_lit(e, value) -> bool:
    return isinstance(e, IntLit) and e.value == value


def is_name(e, name) -> bool:
    return isinstance(e, Name) and e.name == name
