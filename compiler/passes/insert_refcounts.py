"""insert-refcounts: vector-lowered IR -> the same IR with explicit reference
counting (the retain, release, make-unique, temp, release-after, move,
release-var, owned-param and return-releasing nodes of
compiler/ir/vectors.py).

It makes SPEC section 3's value semantics explicit. Vectors are shared by
copies and reference counted; a write first makes the vector it goes
through unique (copy on write), so no variable ever sees another's change.
Only values that hold references take part: vectors (strings included),
job handles, and structs with such a field at any depth; a struct is
retained or released field by field.

Ownership convention. Every expression of a reference-holding type yields
either an OWNED reference (its consumer must keep or drop it: a call's
result, vec-concat, str(), get(), remote, retain), a BORROWED one (valid
while the place it was read from is unchanged: a variable's value, a load,
field-get of something borrowed), or a STATIC one (a string literal: an
immortal constant that needs neither retain nor release).

- Owning sinks take an owned value: var-decl's initializer, assign, store,
  vec-push's value, return's value, and an argument that its function
  takes owned (below). A borrowed value is retained on its way in
  (`(retain (name v))`); an owned one moves in with no operation; a
  variable read at its last use moves in too, `(move v)` (below).
- Borrowing consumers take a borrowed value: call and remote arguments,
  print, vec-len, vec-concat's operands, value-eq, string-cmp, comparisons
  of handles, get/state/cancel's handle, elem-addr's vector, field-get's
  struct. An owned operand becomes a temporary: `(temp %N VALUE)` where it
  is evaluated, released by a `(release-after [%N] ...)` around the
  smallest enclosing expression whose result no longer borrows from it (a
  scalar or owned result; a borrowed one is retained first when it must
  outlive its temporary). Temporaries never live across `&&`/`||`
  operands, so every temporary that a release-after names has been made.
- Function arguments are borrowed: the caller keeps ownership and the
  callee neither retains nor releases a parameter, unless the function
  writes to it (assigns, stores through it, appends to it): then it starts
  with `owned-param p`, owns p like a local, and its callers pass that
  argument owned (an owning sink: retained, moved, or a result handed
  over). So a write to p finds it unique unless the caller still holds it.
  Results are owned. (A job run remotely is called by its wrapper with the
  decoded arguments, fresh with count 1; the wrapper hands over those the
  job owns and releases the others after the call.)
- Moves at last uses. A variable that the body owns (a local, an
  owned-param) read by an owning sink where that read is its last use
  (compiler/ir/liveness.py: the only occurrence of the variable in its
  statement, and no path reads it again before it is replaced) is moved:
  `(move v)` hands v's reference over and leaves v empty (the zero value,
  whose release at the end of v's scope does nothing). So
  `v = push(v, i)` gives push the only reference and push appends in
  place: linear, where retaining made it copy v on every call. A remote
  argument at its last use is moved into a temporary released right after
  the remote (which encodes its arguments before it returns): v is freed
  there instead of at the end of its scope. Not moved: a variable read
  again later (also in a later iteration of a loop), one that occurs twice
  in the statement (`f(v, v)`: the other argument would see the callee's
  in-place writes; `f(len(v), v)` too, conservatively), fields and
  elements (`f(s->xs)` retains), and parameters the function does not own.
- Drops at last uses. After a statement that reads an owned variable for
  the last time without moving it (liveness.dead_after), or after the
  loop or `if` that does, `(release (move x))` frees x's value there;
  its release at the scope's end then finds x empty. Job handles too: a
  running job holds its own reference to its record, so dropping the
  last handle early changes nothing but when the record is freed. Not
  after a scope's last statement for the scope's own variables (its end
  releases them there anyway).
- Variables own their values: a store or assign releases the value it
  replaces; `release-var x` drops x's value where x's scope ends: at the
  end of its block, before a `break` or `continue` that leaves the block,
  and in `return-releasing` on a return (after the returned value has been
  computed).
- A discarded owned result is dropped with `(release ...)`.
- Every elem-addr on the path of a store, store-op or vec-push reads its
  vector with `(make-unique PLACE)` instead of `(load PLACE)`, outermost
  first: `grid[1][0] = x` makes grid unique, then grid[1]. vec-push makes
  its own vector unique (one runtime call, which copies only if shared).

Borrowed values and appends. The only expression that changes a variable
is vec-push (`::`). When a borrowed operand of a consumer is followed by
an operand that contains a vec-push (`f(v, v :: 1)`), the borrowed operand
is retained into a temporary first, since the append may move or change
the vector it points to. The same holds for an element read whose index
appends (`v[len(v :: 8) - 1]`, `g[0][len(g[0] :: 5) - 1]`,
`s->f[len(s->f :: 1) - 1]`): its vector is an operand evaluated before the
index (SPEC 11), so it is read and retained into a temporary first,
`(elem-addr (temp %N (retain V)) INDEX ...)`; the append then finds that
vector shared and copies it, and the element is read from the value held,
as it was before the append (SPEC 3). An index that cannot append (the
common case) costs no reference counting.

Maps (SPEC 13) are counted and copied on write like vectors: a map-addr
on a write path reads its map with make-unique; map-insert-addr and
map-remove make the map at their place unique themselves (one runtime
call). A string key on a write path is held in a temporary from where it
is evaluated until the write is done.

Elided (provably unneeded) reference counting:
- temporaries moved into place: an owned value flowing into an owning sink
  (`x = f(y)`, `v :: str(i)`, `return a + b`) costs no operation;
- last uses on return: `return x;` for a local x moves x out (no retain,
  and x is left out of the releases); every other last use at an owning
  sink moves too (above);
- values that never escape: reading a variable, element or field for a
  borrowing consumer (`print(s)`, `len(v)`, `f(v)`, `v[i][j]`) takes no
  reference, and parameters that are only read are never retained;
- string literals (immortal) are never retained or released;
- values of types that hold no references (scalars, jobstates, structs of
  scalars) never take part.

Afterwards (compiler/ir/vectors.py:check_refcounted): every temp is
released by exactly one enclosing release-after; no write goes through a
vector read with a plain load; an element read whose index appends reads a
vector held in a temporary (or a string literal).
"""
from __future__ import annotations

import attrs

from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.liveness import dead_after, last_uses
from compiler.ir.surface import (Assign, Block, Break, Call,
                                 CharVectorLit, Continue, Expr, ExprStmt, For,
                                 FuncDecl, If, MasterDecl, Name,
                                 Program, Remote, Return, VarDecl,
                                 While)
from compiler.ir.walk import map_children, walk
from compiler.passes.typecheck_flow import can_complete

NONE, OWNED, BORROWED, STATIC = "none", "owned", "borrowed", "static"

# Whether job handles are reference counted here: a handle is a reference
# to the master's record of its job, which the runtime frees when the last
# handle is released (ms_handle_release).
COUNT_HANDLES = True


@attrs.frozen
class _Val:
    """A rewritten expression, its ownership, and the temporaries that its
    (borrowed) value still depends on."""
    expr: Expr
    own: str
    temps: tuple = ()


def _contains_push(e: Expr) -> bool:
    return any(isinstance(n, V.VecPush) for n in walk(e))


def _place_root(place) -> str | None:
    """The variable a place is rooted in (None for an rvalue's element)."""
    while True:
        if isinstance(place, V.VarAddr):
            return place.name
        if isinstance(place, (V.ElemAddr, V.MapAddr)):
            vec = place.vec if isinstance(place, V.ElemAddr) else place.map
            if isinstance(vec, (V.Load, V.MakeUnique)):
                place = vec.place
            elif isinstance(vec, Name):
                return vec.name
            else:
                return None
        elif isinstance(place, V.FieldAddr):
            place = place.base
        elif isinstance(place, (V.VecPush, V.MapInsertAddr)):
            place = place.place
        else:
            return None


def _written_variables(body) -> set:
    names = set()
    for n in walk(body):
        if isinstance(n, Assign) and isinstance(n.target, Name):
            names.add(n.target.name)
        elif isinstance(n, (V.Store, V.StoreOp, V.VecPush, V.MapRemove)):
            root = _place_root(n.place)
            if root is not None:
                names.add(root)
    return names


class _Body:
    """Reference counting for one function or master block."""

    def __init__(self, structs: dict, ret: T.Type, consumes: dict):
        self.structs = structs
        self.ret = ret
        # function name -> per parameter, whether it takes its argument
        # owned (the function writes that parameter: see the docstring).
        self.consumes = consumes
        # ids of the `(name x)` reads that are last uses of an owned
        # variable x (compiler/ir/liveness.py), where a sink moves x.
        self.last_uses: set = set()
        # id of a statement -> the owned variables it reads last
        # (compiler/ir/liveness.py:dead_after), dropped right after it.
        self.dead_after: dict = {}
        # The variables moved by the statement being built (stmt_and_drops).
        self.moved: set = set()
        self.scopes: list[list[tuple[str, T.Type]]] = []
        self.loops: list[int] = []   # len(self.scopes) at each loop's body
        self.counter = 0
        # The temporaries holding the keys of the write path being built
        # (write_place_temps).
        self._wtemps: list = []

    def refs(self, t) -> bool:
        return t is not None and V.holds_refs(t, self.structs, COUNT_HANDLES)

    # ------------------------------------------------------------ ownership

    def new_temp(self, value: Expr) -> V.Temp:
        self.counter += 1
        return V.Temp(id=f"%{self.counter}", value=value, type=value.type,
                      pos=value.pos)

    @staticmethod
    def release_after(temps: tuple, e: Expr) -> Expr:
        if not temps:
            return e
        return V.ReleaseAfter(temps=tuple(temps), body=e, type=e.type,
                              pos=e.pos)

    def movable(self, v: _Val) -> bool:
        """Whether `v` is the last use of an owned variable."""
        return (v.own == BORROWED and isinstance(v.expr, Name)
                and id(v.expr) in self.last_uses)

    def move(self, name: Name) -> V.Move:
        self.moved.add(name.name)
        return V.Move(name=name.name, type=name.type, pos=name.pos)

    def owned(self, v: _Val) -> Expr:
        """`v` as an owned value, for an owning sink: moved out of its
        variable at that variable's last use, else retained when borrowed."""
        if self.movable(v):
            return self.move(v.expr)
        if v.own == BORROWED:
            retained = V.Retain(value=v.expr, type=v.expr.type,
                                pos=v.expr.pos)
            return self.release_after(v.temps, retained)
        return self.release_after(v.temps, v.expr)

    def operands(self, vals: list, sinks=(), moves=False) -> tuple[list, tuple]:
        """Borrowed forms of a consumer's operands, and the temporaries to
        release once the consumer is done. Operand i is taken owned instead
        when sinks[i] (an argument that a function takes owned); with
        `moves`, a last use of a variable is moved into a temporary (a
        remote argument: released as soon as it is encoded)."""
        exprs, temps = [], []
        for i, v in enumerate(vals):
            later_push = any(_contains_push(w.expr) for w in vals[i + 1:])
            if i < len(sinks) and sinks[i]:
                exprs.append(self.owned(v))
            elif (v.own == OWNED or (v.own == BORROWED and later_push)
                    or (moves and self.movable(v))):
                t = self.new_temp(self.owned(v))
                exprs.append(t)
                temps.append(t.id)
            else:
                exprs.append(v.expr)
                temps.extend(v.temps)
        return exprs, tuple(temps)

    def result(self, e: Expr, temps: tuple, borrowed_from_operands=False) -> _Val:
        """The _Val of consumer `e` whose operands hold `temps`."""
        if borrowed_from_operands and self.refs(e.type):
            return _Val(e, BORROWED, temps)
        if self.refs(e.type):
            return _Val(self.release_after(temps, e), OWNED)
        return _Val(self.release_after(temps, e), NONE)

    # ------------------------------------------------------------ expressions

    def expr(self, e: Expr) -> _Val:
        if isinstance(e, CharVectorLit):
            return _Val(e, STATIC)
        if isinstance(e, Name):
            return _Val(e, BORROWED if self.refs(e.type) else NONE)
        if isinstance(e, V.Load):
            place, temps = self.read_place(e.place)
            return self.result(attrs.evolve(e, place=place), temps,
                               borrowed_from_operands=True)
        if isinstance(e, V.FieldGet):
            (value,), temps = self.operands([self.expr(e.value)])
            return self.result(attrs.evolve(e, value=value), temps,
                               borrowed_from_operands=True)
        if isinstance(e, (V.Store, V.StoreOp)):
            return self.store(e)
        if isinstance(e, V.VecPush):
            place, temps = self.write_place_temps(e)
            return _Val(place, BORROWED, temps)
        if isinstance(e, V.MapRemove):
            place, wtemps = self.write_place_temps(e.place)
            (key,), temps = self.operands([self.expr(e.key)])
            return _Val(self.release_after(wtemps + temps,
                                           attrs.evolve(e, place=place, key=key)),
                        NONE)
        if isinstance(e, (Call, Remote)):
            sinks = self.consumes.get(e.name, ()) if isinstance(e, Call) else ()
            args, temps = self.operands([self.expr(a) for a in e.args],
                                        sinks=sinks,
                                        moves=isinstance(e, Remote))
            return self.result(attrs.evolve(e, args=tuple(args)), temps)
        if isinstance(e, V.Place):
            raise AssertionError(f"place {e} used as a value")
        # Every other expression borrows its operands: unary and binary
        # operators (scalars, handles), vec-len, vec-concat, value-eq,
        # string-cmp; && and || have bool operands, which hold no temps.
        kids = [c for c in _expr_children(e)]
        vals = [self.expr(c) for c in kids]
        exprs, temps = self.operands(vals)
        mapping = dict(zip(map(id, kids), exprs))
        rebuilt = map_children(e, lambda c: mapping.get(id(c), c))
        return self.result(rebuilt, temps)

    def read_place(self, p) -> tuple:
        """A place read (not written) and the temporaries it borrows from."""
        if isinstance(p, V.VarAddr):
            return p, ()
        if isinstance(p, V.ElemAddr):
            # The vector, then the index (SPEC 11): an index that appends
            # makes operands() hold the vector first (see the docstring).
            (vec, index), temps = self.operands([self.expr(p.vec),
                                                 self.expr(p.index)])
            return attrs.evolve(p, vec=vec, index=index), temps
        if isinstance(p, V.MapAddr):
            # The map, then the key (SPEC 13), as for an element.
            (m, key), temps = self.operands([self.expr(p.map),
                                             self.expr(p.key)])
            return attrs.evolve(p, map=m, key=key), temps
        if isinstance(p, V.FieldAddr):
            base, temps = self.read_place(p.base)
            return attrs.evolve(p, base=base), temps
        if isinstance(p, V.VecPush):
            return self.write_place_temps(p)
        raise AssertionError(f"unknown place {p}")

    def write_place_temps(self, p) -> tuple:
        """write_place(p), and the temporaries that hold its keys: a key
        that holds references (a string) is held from phase 1, where it is
        evaluated, until its consumer is done, so that the value assigned
        cannot change it (SPEC 11) and its runtime call may borrow it."""
        saved, self._wtemps = self._wtemps, []
        try:
            place = self.write_place(p)
            return place, tuple(self._wtemps)
        finally:
            self._wtemps = saved

    def write_key(self, key: Expr) -> Expr:
        v = self.expr(key)
        if not self.refs(key.type) or v.own == STATIC:
            return self.owned(v)
        t = self.new_temp(self.owned(v))
        self._wtemps.append(t.id)
        return t

    def write_place(self, p):
        """A place on the path of a write: every vector it goes through is
        made unique."""
        if isinstance(p, V.VarAddr):
            return p
        if isinstance(p, V.ElemAddr):
            assert isinstance(p.vec, V.Load), f"write through an rvalue {p}"
            inner = self.write_place(p.vec.place)
            vec = V.MakeUnique(place=inner, type=p.vec.type, pos=p.vec.pos)
            index = self.owned(self.expr(p.index))
            return attrs.evolve(p, vec=vec, index=index)
        if isinstance(p, V.MapAddr):
            assert isinstance(p.map, V.Load), f"write through an rvalue {p}"
            inner = self.write_place(p.map.place)
            m = V.MakeUnique(place=inner, type=p.map.type, pos=p.map.pos)
            return attrs.evolve(p, map=m, key=self.write_key(p.key))
        if isinstance(p, V.MapInsertAddr):
            return attrs.evolve(p, place=self.write_place(p.place),
                                key=self.write_key(p.key))
        if isinstance(p, V.FieldAddr):
            return attrs.evolve(p, base=self.write_place(p.base))
        if isinstance(p, V.VecPush):
            place = self.write_place(p.place)
            return attrs.evolve(p, place=place, value=self.owned(self.expr(p.value)))
        raise AssertionError(f"unknown place {p}")

    def store(self, e) -> _Val:
        place, wtemps = self.write_place_temps(e.place)
        if isinstance(e, V.Store):
            value = self.owned(self.expr(e.value))
            return _Val(self.release_after(
                wtemps, attrs.evolve(e, place=place, value=value)), NONE)
        (value,), temps = self.operands([self.expr(e.value)])
        return _Val(self.release_after(wtemps + temps,
                                       attrs.evolve(e, place=place,
                                                    value=value)), NONE)

    # ------------------------------------------------------------ statements

    def owned_vars(self, depth: int = 0) -> tuple:
        """Names of the variables to release when leaving every scope from
        `depth` inward, innermost (and latest declared) first."""
        names = []
        for scope in reversed(self.scopes[depth:]):
            names.extend(name for name, _ in reversed(scope))
        return tuple(names)

    def release_vars(self, depth: int, pos) -> list:
        out = []
        for scope in reversed(self.scopes[depth:]):
            for name, t in reversed(scope):
                out.append(V.ReleaseVar(name=name, type=t, pos=pos))
        return out

    def declare(self, name: str, t: T.Type) -> None:
        if self.refs(t):
            self.scopes[-1].append((name, t))

    def stmts(self, stmts) -> list:
        out = []
        for i, s in enumerate(stmts):
            out.extend(self.stmt_and_drops(s, last=i == len(stmts) - 1))
        return out

    def stmt_and_drops(self, s, last: bool = True) -> list:
        """stmt(s), then `(release (move x))` for each variable x that s
        reads for the last time and did not move (dead_after): x's value is
        freed where it stops being needed, not where x's scope ends, so a
        program's peak holds only what is still to be read (`words` is gone
        before `split(join(words, " "), " ")` builds the parts). Not after
        the `last` statement of a scope for the scope's own variables,
        which its end releases there anyway."""
        self.moved = set()
        out = self.stmt(s)
        dead = self.dead_after.get(id(s))
        if not dead:
            return out
        # A simple statement that moved x left it empty; a loop may move x
        # and then give it a new value, so after one x is dropped anyway.
        moved = set() if isinstance(s, (If, While, For)) else self.moved
        ending = {n for n, _ in self.scopes[-1]} if last else set()
        for name in dead:
            # None: declared inside the loop or `if` s, and released there.
            t = self.var_type(name)
            if name in moved or name in ending or t is None:
                continue
            out.append(ExprStmt(expr=V.Release(
                value=V.Move(name=name, type=t, pos=s.pos), type=T.VOID,
                pos=s.pos), pos=s.pos))
        return out

    def var_type(self, name: str):
        """The type of owned variable `name` in scope, or None."""
        for scope in reversed(self.scopes):
            for n, t in scope:
                if n == name:
                    return t
        return None

    def scoped(self, s) -> object:
        """A branch or loop body: a scope of its own."""
        self.scopes.append([])
        if isinstance(s, Block):
            body = self.stmts(s.stmts)
        else:
            body = self.stmt_and_drops(s)
        if can_complete(s):     # else its end is unreachable
            body.extend(self.release_vars(len(self.scopes) - 1, s.pos))
        self.scopes.pop()
        if isinstance(s, Block):
            return attrs.evolve(s, stmts=tuple(body))
        if len(body) == 1:
            return body[0]
        return Block(stmts=tuple(body), pos=s.pos)

    def stmt(self, s) -> list:
        if isinstance(s, Block):
            return [self.scoped(s)]
        if isinstance(s, VarDecl):
            init = None if s.init is None else self.owned(self.expr(s.init))
            self.declare(s.name, s.type)
            return [attrs.evolve(s, init=init)]
        if isinstance(s, Assign):
            value = self.expr(s.value)
            if s.op == "=":
                return [attrs.evolve(s, value=self.owned(value))]
            return [attrs.evolve(s, value=self.owned(value))]
        if isinstance(s, ExprStmt):
            v = self.expr(s.expr)
            if v.own == OWNED:
                e = V.Release(value=v.expr, type=T.VOID, pos=v.expr.pos)
            else:
                e = self.release_after(v.temps, v.expr)
            return [attrs.evolve(s, expr=e)]
        if isinstance(s, If):
            cond = self.owned(self.expr(s.cond))
            then = self.scoped(s.then)
            else_ = None if s.else_ is None else self.scoped(s.else_)
            return [attrs.evolve(s, cond=cond, then=then, else_=else_)]
        if isinstance(s, While):
            cond = self.owned(self.expr(s.cond))
            return [attrs.evolve(s, cond=cond, body=self.loop_body(s.body))]
        if isinstance(s, For):
            return self.for_loop(s)
        if isinstance(s, Return):
            return [self.return_(s)]
        if isinstance(s, (Break, Continue)):
            return self.release_vars(self.loops[-1], s.pos) + [s]
        return [s]   # Empty

    def loop_body(self, body):
        self.loops.append(len(self.scopes))
        try:
            return self.scoped(body)
        finally:
            self.loops.pop()

    def for_loop(self, s: For) -> list:
        self.scopes.append([])
        init = None
        if s.init is not None:
            init, = self.stmt(s.init)
        cond = None if s.cond is None else self.owned(self.expr(s.cond))
        step = None
        if s.step is not None:
            step, = self.stmt(s.step)
        body = self.loop_body(s.body)
        after = self.release_vars(len(self.scopes) - 1, s.pos)
        self.scopes.pop()
        return [attrs.evolve(s, init=init, cond=cond, step=step,
                             body=body)] + after

    def return_(self, s: Return):
        value = None
        moved = None
        if s.value is not None:
            v = self.expr(s.value)
            if (v.own == BORROWED and isinstance(v.expr, Name)
                    and any(v.expr.name == n for sc in self.scopes for n, _ in sc)):
                moved = v.expr.name          # last use: move it out
                value = self.move(v.expr)
            else:
                value = self.owned(v)
        releases = self.owned_vars()
        if moved is not None:      # the innermost variable of that name
            i = releases.index(moved)
            releases = releases[:i] + releases[i + 1:]
        if not releases:
            return attrs.evolve(s, value=value)
        return V.ReturnReleasing(value=value, releases=releases, pos=s.pos)

    # ------------------------------------------------------------ bodies

    def owned_locals(self, body) -> set:
        return {n.name for n in walk(body)
                if isinstance(n, VarDecl) and self.refs(n.type)}

    def function(self, fn: FuncDecl) -> FuncDecl:
        self.scopes.append([])
        prologue = []
        for p, owned in zip(fn.params, self.consumes[fn.name]):
            if owned:
                prologue.append(V.OwnedParam(name=p.name, type=p.type,
                                             pos=p.pos))
                self.declare(p.name, p.type)
        owned = self.owned_locals(fn.body) | {p.name for p in prologue}
        self.last_uses = last_uses(fn.body, owned)
        self.dead_after = dead_after(fn.body, owned)
        body = prologue + self.stmts(fn.body.stmts)
        if can_complete(fn.body):
            body.extend(self.release_vars(0, fn.body.pos))
        self.scopes.pop()
        return attrs.evolve(fn, body=attrs.evolve(fn.body, stmts=tuple(body)))

    def master(self, m: MasterDecl) -> MasterDecl:
        owned = self.owned_locals(m.body)
        self.last_uses = last_uses(m.body, owned)
        self.dead_after = dead_after(m.body, owned)
        return attrs.evolve(m, body=self.scoped(m.body))


def _expr_children(e: Expr) -> list:
    from compiler.ir.walk import children
    return [c for c in children(e) if isinstance(c, Expr)]


def consumed_params(prog: Program, structs: dict) -> dict:
    """function name -> per parameter, whether the function takes it owned:
    it holds references and the function writes it."""
    out = {}
    for d in prog.decls:
        if isinstance(d, FuncDecl):
            written = _written_variables(d.body)
            out[d.name] = tuple(
                p.name in written
                and V.holds_refs(p.type, structs, COUNT_HANDLES)
                for p in d.params)
    return out


def run(prog: Program) -> Program:
    structs = V.struct_table(prog)
    consumes = consumed_params(prog, structs)
    decls = []
    for d in prog.decls:
        if isinstance(d, FuncDecl):
            d = _Body(structs, d.ret, consumes).function(d)
        elif isinstance(d, MasterDecl):
            d = _Body(structs, T.VOID, consumes).master(d)
        decls.append(d)
    return attrs.evolve(prog, decls=tuple(decls))
