"""eliminate-bounds-checks: vector-lowered IR -> the same IR, where element
accesses that a counted loop's range proves in bounds carry `in-bounds@L:C`
instead of `bounds-check@L:C` (compiler/ir/vectors.py: InBounds).

A candidate loop is a counted `for` (compiler/ir/loops.py:counted): its
init declares an int induction variable `j = S`, its step is `j += K` (or
`j = j + K`), its condition `j < E` or `j <= E`, nothing else in the loop
assigns j, and E and K are invariant. A candidate access in its body is an
elem-addr of a vector variable v, read (`(name v)`) or written through
(`(load (var-addr v))`), at index `j`, `A + j`, `j + A` or `j - A`, where:

- S, E, K and A are invariant and pure: int literals, int variables that
  the loop does not assign, `+ - *` and unary `-` of those, and `len(w)` of
  a vector variable w whose length the loop does not change (no division:
  it may fail; int arithmetic wraps, the same in the guard as in the loop);
- the loop does not change v's length: no store, `+=` or `::` on the
  variable v itself (stores to its elements are fine) and no declaration of
  v, j or any variable of S, E, K or A inside it;
- S and K are not negative literals such as `-1`, K not 0.

When every candidate access is `v[j]` under `j < len(v)` with S a
non-negative literal and K = 1, the range proves the accesses outright and
they become in-bounds in place. Otherwise the loop is versioned:

    if (E < S (`<=`; `<`: E <= S)
        || (S >= 0 && K >= 1 && LAST <= MAX - K
            && lo >= 0 && lo < len(v) && E - S <= len(v) - lo ...))
        the loop with its candidate accesses in-bounds
    else
        the loop as it was

with lo = A + S per access (S - A for `j - A`, S for a bare `j`), the
count `E - S` compared with `<` for `<=`, LAST = E for `<=` and E - 1 for
`<` (so j + K never wraps past MAX, which would go on from MIN), the terms
known true left out (S >= 0 for a literal S, K >= 1 for a literal K, the
wrap term for `<` by 1). Every j the loop reaches lies in [S, LAST], so
every index in [lo, len(v)); E - S is exact because 0 <= S < E. The guard
has no side effects and cannot fail, so a program that indexes out of
bounds takes the original loop and fails exactly where and how it did.
Loops are handled innermost first; a loop is versioned only while its body
is small (MAX_VERSIONED_NODES) so nesting cannot blow the code up.
Everything else, `while` loops, steps that vary, an index that is not an
induction variable plus an invariant, a vector of vectors' rows
(`m[i][j]`, each row its own length), keeps its bounds-check.
"""
from __future__ import annotations

import attrs

from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.loops import LoopEffects, counted, is_lit
from compiler.ir.printer import format_expr
from compiler.ir.surface import (Binary, For, If, IntLit, Name, Node, Program,
                                 Unary)
from compiler.ir.walk import map_children, walk

MAX_INT = (1 << 63) - 1

# A loop whose body has more nodes than this is not duplicated.
MAX_VERSIONED_NODES = 4000


def _int(value: int, pos) -> IntLit:
    return IntLit(value=value, type=T.INT, pos=pos)


def _bin(op: str, left, right, pos) -> Binary:
    t = T.BOOL if op in ("<", "<=", ">=", "&&", "||") else T.INT
    return Binary(op=op, left=left, right=right, type=t, pos=pos)


def _all(terms, pos):
    out = None
    for t in terms:
        out = t if out is None else _bin("&&", out, t, pos)
    return out


@attrs.frozen
class _Access:
    node: V.ElemAddr
    vec: str            # the vector variable
    offset: object      # A, or None for a bare `j`
    minus: bool = False  # the index is `j - A`


def _access(info: LoopEffects, n) -> _Access | None:
    if not isinstance(n, V.ElemAddr) or not isinstance(n.check,
                                                       V.BoundsCheck):
        return None
    vec = n.vec
    if isinstance(vec, V.Load) and isinstance(vec.place, V.VarAddr):
        name = vec.place.name
    elif isinstance(vec, Name):
        name = vec.name
    else:
        return None
    if not info.steady(name):
        return None
    index = n.index
    if _is_var(info, index):
        return _Access(n, name, None)
    if isinstance(index, Binary) and index.op == "+":
        for mine, other in ((index.right, index.left),
                            (index.left, index.right)):
            if _is_var(info, mine) and info.invariant(other):
                return _Access(n, name, other)
    if isinstance(index, Binary) and index.op == "-" \
            and _is_var(info, index.left) and info.invariant(index.right):
        return _Access(n, name, index.right, minus=True)
    return None

def _is_var(info: LoopEffects, e) -> bool:
    return isinstance(e, Name) and e.name == info.var


def _negative_literal(e) -> bool:
    """Whether e is a negative int literal (`-1` is a unary minus)."""
    if isinstance(e, IntLit):
        return e.value < 0
    return (isinstance(e, Unary) and e.op == "-"
            and isinstance(e.operand, IntLit) and e.operand.value > 0)


def _prove(node: Node, proven: set) -> Node:
    """node with the elem-addrs whose ids are in `proven` in-bounds (ids
    of the input's nodes: each is matched before its parent is rebuilt)."""
    def visit(n):
        if isinstance(n, V.ElemAddr) and id(n) in proven:
            inner = map_children(n, visit)
            return attrs.evolve(inner, check=V.InBounds(pos=n.check.pos))
        return map_children(n, visit)
    return visit(node)


def _len(vec: str, t, pos) -> V.VecLen:
    return V.VecLen(vec=Name(name=vec, type=t, pos=pos), type=T.INT, pos=pos)


def _vec_type(a: _Access):
    return a.node.vec.type


def _optimize_loop(loop: For):
    """The loop, rewritten (a statement: the loop or a versioning If)."""
    ind = counted(loop, any_step=True)
    if ind is None or _negative_literal(ind.start) \
            or _negative_literal(ind.step) or is_lit(ind.step, 0):
        return loop
    start, op, end, info = ind.start, ind.op, ind.end, ind.effects
    if not (isinstance(start, IntLit) or info.invariant(start)):
        return loop
    accesses = [a for n in walk(loop.body)
                if (a := _access(info, n)) is not None]
    if not accesses:
        return loop
    proven = {id(a.node) for a in accesses}
    fast = attrs.evolve(loop, body=_prove(loop.body, proven))
    statically = (op == "<" and isinstance(start, IntLit)
                  and is_lit(ind.step, 1)
                  and isinstance(end, V.VecLen)
                  and all(a.offset is None and end.vec.name == a.vec
                          for a in accesses))
    if statically:
        return fast
    # `j <= len(v)` indexing v[j] fails whenever the loop runs: no version.
    if op == "<=" and any(a.offset is None and isinstance(end, V.VecLen)
                          and end.vec.name == a.vec for a in accesses):
        return loop
    if sum(1 for _ in walk(loop.body)) > MAX_VERSIONED_NODES:
        return loop
    return If(cond=_guard(start, op, end, ind.step, accesses, loop.pos),
              then=fast,
              else_=loop, pos=loop.pos)


def _guard(start, op, end, step, accesses, pos):
    empty = _bin("<" if op == "<=" else "<=", end, start, pos)
    count = end if is_lit(start, 0) else _bin("-", end, start, pos)
    terms = [] if isinstance(start, IntLit) else [
        _bin(">=", start, _int(0, pos), pos)]
    # The step is positive, and j never wraps past MAX (it would go on from
    # MIN): the last j is at most E (`<=`) or E - 1, and j + step <= MAX.
    if not isinstance(step, IntLit):
        terms.append(_bin(">=", step, _int(1, pos), pos))
    last = end if op == "<=" else _bin("-", end, _int(1, pos), pos)
    if not (op == "<" and is_lit(step, 1)):
        terms.append(_bin("<=", last, _bin("-", _int(MAX_INT, pos), step,
                                            pos), pos))
    within = "<=" if op == "<" else "<"
    seen = set()
    for a in accesses:
        key = (a.vec, a.minus, format_expr(a.offset))
        if key in seen:
            continue
        seen.add(key)
        if a.offset is None:
            lo = start
        elif a.minus:
            lo = _bin("-", start, a.offset, pos)
        elif is_lit(start, 0):
            lo = a.offset
        else:
            lo = _bin("+", a.offset, start, pos)
        n = _len(a.vec, _vec_type(a), pos)
        if a.offset is not None:     # else lo is S, tested above
            terms.append(_bin(">=", lo, _int(0, pos), pos))
        left = n if is_lit(lo, 0) else _bin("-", n, lo, pos)
        terms += [_bin("<", lo, n, pos), _bin(within, count, left, pos)]
    return _bin("||", empty, _all(terms, pos), pos)


def _rewrite(n: Node) -> Node:
    n = map_children(n, _rewrite)
    if isinstance(n, For):
        return _optimize_loop(n)
    return n


def run(prog: Program) -> Program:
    return _rewrite(prog)
