"""Last uses of variables in a function body of the vector-lowered IR
(compiler/ir/vectors.py), for insert-refcounts' moves and drops.

`last_uses(body, tracked)` finds the reads `(name x)` of a tracked variable
x after which x's value is never read again on any path: a backward
liveness analysis over a control-flow graph whose nodes are the body's
units of evaluation. A unit is what a statement evaluates before control
goes elsewhere: a declaration's initializer, an assignment, an expression
statement, the condition of an `if`, `while` or `for` (evaluated once per
iteration), a return's value. Edges follow SPEC's control flow: both arms
of an `if`, a loop's back edge from the end of its body (through the step
of a `for`), `continue` to the step or condition, `break` past the loop,
`return` to the exit. A `for` without a condition and `while (true)` leave
only through `break` (their condition still counts as a use).

Per unit, `uses` are the tracked variables it reads and `defs` the one it
replaces whole at its end: `var-decl x`, `x = e` (a job handle), and the
expression statement `(store (var-addr x) e)`. A write through x (an
element, a field, `x :: e`, `x += e`, a map key) reads x, so it is a use.

A read `(name x)` is a last use when it is the only occurrence of x in
its unit (no other read, borrow or write of x, not even one evaluated
before it: `f(v, v)` and `f(len(v), v)` do not qualify) and x is not live
after the unit, or the unit itself replaces x (`v = push(v, i)`). Moving x
there cannot be observed: nothing reads the emptied variable before it
is replaced or goes out of scope. Variables are tracked by name, which
typecheck has made unique per function (`x`, `x.1`, ...).

`dead_after(body, tracked)` says, per statement, which tracked variables
need not be kept past it (read there, or inside the loop or `if` it is,
and live on no path after it): insert-refcounts drops their values there.

Sets of variables are bit sets (Python ints) over the tracked names; the
worklist runs in the order nodes are made (backwards through the body), so
a body without loops converges in one pass and each loop adds one.
"""
from __future__ import annotations

from compiler.ir import vectors as V
from compiler.ir.surface import (Assign, Block, Break, Continue, ExprStmt,
                                 For, If, Name, Return, VarDecl, While)
from compiler.ir.walk import walk


class _Graph:
    def __init__(self, index: dict):
        self.index = index            # tracked name -> bit number
        self.uses: list[int] = []
        self.defs: list[int] = []
        self.succ: list[list[int]] = []
        # node -> (exprs read, bit of the variable it replaces or 0)
        self.units: list[tuple] = []
        # node -> the declaration, assignment or expression statement that
        # is the whole unit (for dead_after), else None
        self.stmts: list = []
        # (if/while/for statement, the node that follows it, and the range
        # [first, end) of its own nodes), for dead_after
        self.compounds: list[tuple] = []

    def node(self, exprs: tuple, defined: str | None, succ: list,
             stmt=None) -> int:
        uses = 0
        for e in exprs:
            for n in walk(e):
                if isinstance(n, (Name, V.VarAddr)) and n.name in self.index:
                    uses |= 1 << self.index[n.name]
        d = 1 << self.index[defined] if defined in self.index else 0
        self.uses.append(uses)
        self.defs.append(d)
        self.succ.append(succ)
        self.units.append((exprs, d))
        self.stmts.append(stmt)
        return len(self.uses) - 1


class _Builder:
    """Builds the graph backwards: each statement is given the node that
    follows it and returns its own entry node (-1 is the exit)."""

    def __init__(self, graph: _Graph):
        self.g = graph
        self.loops: list[tuple[int, int]] = []   # (continue to, break to)

    def stmts(self, stmts, nxt: int) -> int:
        for s in reversed(stmts):
            nxt = self.stmt(s, nxt)
        return nxt

    def stmt(self, s, nxt: int) -> int:
        g = self.g
        if s is None:
            return nxt
        if isinstance(s, Block):
            return self.stmts(s.stmts, nxt)
        if isinstance(s, VarDecl):
            exprs = () if s.init is None else (s.init,)
            return g.node(exprs, s.name, [nxt], s)
        if isinstance(s, Assign):
            if s.op == "=":
                return g.node((s.value,), s.target.name, [nxt], s)
            return g.node((s.target, s.value), None, [nxt], s)
        if isinstance(s, ExprStmt):
            e = s.expr
            if isinstance(e, V.Store) and isinstance(e.place, V.VarAddr):
                return g.node((e.value,), e.place.name, [nxt], s)
            return g.node((e,), None, [nxt], s)
        if isinstance(s, (If, While, For)):
            # Its nodes are the ones made while it is built (contiguous).
            first = len(g.uses)
            entry = self.compound(s, nxt)
            g.compounds.append((s, nxt, first, len(g.uses)))
            return entry
        if isinstance(s, Return):
            return g.node(() if s.value is None else (s.value,), None, [])
        if isinstance(s, Break):
            return self.loops[-1][1]
        if isinstance(s, Continue):
            return self.loops[-1][0]
        return nxt    # Empty

    def compound(self, s, nxt: int) -> int:
        g = self.g
        if isinstance(s, If):
            then = self.stmt(s.then, nxt)
            else_ = self.stmt(s.else_, nxt)
            return g.node((s.cond,), None, [then, else_])
        if isinstance(s, While):
            head = g.node((s.cond,), None, [])
            g.succ[head] = [self.loop_body(s.body, head, nxt, head)]
            if not _always_true(s.cond):
                g.succ[head].append(nxt)
            return head
        head = g.node(() if s.cond is None else (s.cond,), None, [])  # For
        step = self.stmt(s.step, head)
        g.succ[head] = [self.loop_body(s.body, step, nxt, step)]
        if s.cond is not None:
            g.succ[head].append(nxt)
        return self.stmt(s.init, head)

    def loop_body(self, body, after: int, brk: int, cont: int) -> int:
        self.loops.append((cont, brk))
        try:
            return self.stmt(body, after)
        finally:
            self.loops.pop()


def _always_true(cond) -> bool:
    return type(cond).__name__ == "BoolLit" and cond.value is True


def _solve(body, tracked):
    """The graph of `body` over the variables `tracked`, its index of
    names, and each node's live-out set (variables read on some path from
    the node's end before being replaced)."""
    index = {name: k for k, name in enumerate(sorted(tracked))}
    g = _Graph(index)
    _Builder(g).stmts(body.stmts if isinstance(body, Block) else (body,), -1)
    n = len(g.uses)
    live_in = [0] * n
    changed = True
    while changed:
        changed = False
        for k in range(n):
            out = 0
            for s in g.succ[k]:
                if s >= 0:
                    out |= live_in[s]
            new = g.uses[k] | (out & ~g.defs[k])
            if new != live_in[k]:
                live_in[k] = new
                changed = True
    live_out = []
    for k in range(n):
        out = 0
        for s in g.succ[k]:
            if s >= 0:
                out |= live_in[s]
        live_out.append(out)
    return g, index, live_in, live_out


def last_uses(body, tracked) -> set:
    """ids of the `(name x)` nodes of `body` (x in `tracked`) that are last
    uses of x (the module docstring)."""
    if not tracked:
        return set()
    g, index, _, live_out = _solve(body, tracked)
    moves = set()
    for k, (exprs, defined) in enumerate(g.units):
        if not g.uses[k]:
            continue
        out = live_out[k]
        counts: dict = {}
        for e in exprs:
            for m in walk(e):
                if isinstance(m, (Name, V.VarAddr)) and m.name in index:
                    counts.setdefault(m.name, []).append(m)
        for name, seen in counts.items():
            bit = 1 << index[name]
            if (len(seen) == 1 and isinstance(seen[0], Name)
                    and (not out & bit or defined == bit)):
                moves.add(id(seen[0]))
    return moves


def dead_after(body, tracked) -> dict:
    """id of each statement of `body` -> the names (of `tracked`, sorted)
    whose values can be dropped right after it, where control goes on to
    the next statement: for a declaration, assignment or expression
    statement, those it reads that no path reads again before replacing
    them (not one it replaces itself: the variable holds its new value);
    for an `if`, `while` or `for`, those it reads or writes anywhere inside
    that are not live after it (a vector a loop walks, dropped once the
    loop is done)."""
    if not tracked:
        return {}
    g, index, live_in, live_out = _solve(body, tracked)
    names = sorted(tracked)

    def named(bits):
        return tuple(names[i] for i in range(len(names)) if bits >> i & 1)

    dead: dict = {}
    for k, stmt in enumerate(g.stmts):
        bits = g.uses[k] & ~live_out[k] & ~g.defs[k]
        if stmt is not None and bits:
            dead[id(stmt)] = named(bits)
    for stmt, nxt, first, end in g.compounds:
        inside = 0
        for k in range(first, end):
            inside |= g.uses[k] | g.defs[k]
        bits = inside & ~(live_in[nxt] if nxt >= 0 else 0)
        if bits:
            dead[id(stmt)] = named(bits)
    return dead
