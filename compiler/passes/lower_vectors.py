"""lower-vectors: typed IR -> vector-lowered IR (compiler/ir/vectors.py).

Spells out every operation on vectors, strings and structs as places and
explicit element operations, so that insert-refcounts and codegen see each
read, write, bounds check and runtime call:

- reading `v[i]` becomes `(load (elem-addr V I bounds-check@L:C))` where V
  is the vector's value and L:C the `[` (SPEC 11: where index errors point);
- reading `s->f` becomes `(load (field-addr PLACE K f))` when s lives in
  memory (a variable, an element, a field of those), and
  `(field-get VALUE K f)` when it is a computed value such as a call's
  result; K is the field's index in its struct's declaration;
- `lv = e` with lv an element or field becomes `(store PLACE E)`, and
  `lv op= e` becomes `(store-op OP PLACE E)` (OP `vec-concat` for vector
  `+=`), where on the path of a write each vector is read through a place,
  `(load PLACE)`, which insert-refcounts turns into make-unique;
  assigning a whole vector or struct variable is a store to its var-addr,
  and vector `x += e` a `(store-op vec-concat (var-addr x) E)` (which
  appends in place when x is unique), and so is `x = x + e`; `x = e` and
  `x op= e` on a variable
  of any other type (scalars, jobstate, job<T>) stay Assign;
- `lv :: e` becomes `(vec-push PLACE E)`, itself a place, so
  `(v :: 1) :: 2` is `(vec-push (vec-push (var-addr v) 1) 2)`; used as a
  value it is loaded, `(load (vec-push ...))`;
- `m[k]` on a map becomes `(load (map-addr M K key-check@L:C))`, read
  like an element (M the map's value, read before K); the target of
  `m[k] = e` alone is `(map-insert-addr PLACE K)`, which inserts K when it
  is absent, after e (SPEC 13); every other write through `m[k]` goes
  through a map-addr whose map is loaded from its place (made unique by
  insert-refcounts);
- `has`, `remove`, `keys`, `values` become map-has, map-remove (on the
  map's place), map-keys, map-values;
- `len(v)` becomes vec-len (of a map too: its header counts its keys), vector `+` vec-concat, `==` on vectors or
  structs value-eq (and `!=` its negation), `< <= > >=` on strings a
  string-cmp compared with 0.

SPEC 11's order of evaluation is the IR's: a store evaluates its place's
indices, then its value, then the place's address (loads, bounds checks);
a store-op reads the place (with its check) before evaluating its value;
vec-push evaluates (and copies) its value before appending.

Afterwards: no Index, FieldAccess or Append node, no Binary or Call `len`
on vectors or structs, every element access carries its bounds check,
every Assign targets a variable of a type that is neither a vector nor a
struct (compiler/ir/vectors.py:check_lowered_vectors).
"""
from __future__ import annotations

import attrs

from compiler.builtins import TABLE as BUILTINS
from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.surface import (Append, Assign, Binary, Call, Expr,
                                 ExprStmt, FieldAccess, Index, IntLit, Name,
                                 Node, Program, Unary)
from compiler.ir.walk import map_children

_ORDER = ("<", "<=", ">", ">=")

# The IR nodes of this pass that builtins become (compiler/builtins.py).
_NODE_OF = {
    "vec-len": lambda self, e: V.VecLen(vec=self.value(e.args[0]),
                                        type=T.INT, pos=e.pos),
    # SPEC 13
    "map-has": lambda self, e: V.MapHas(map=self.value(e.args[0]),
                                        key=self.value(e.args[1]),
                                        type=T.BOOL, pos=e.pos),
    "map-remove": lambda self, e: V.MapRemove(
        place=self.place(e.args[0], write=True), key=self.value(e.args[1]),
        type=T.VOID, pos=e.pos),
    "map-keys": lambda self, e: V.MapKeys(map=self.value(e.args[0]),
                                          type=e.type, pos=e.pos),
    "map-values": lambda self, e: V.MapValues(map=self.value(e.args[0]),
                                              type=e.type, pos=e.pos),
}
_AGGREGATES = (T.VectorType, T.StructType, T.MapType)
_NODES = {b.name: _NODE_OF[b.lowering.name] for b in BUILTINS.values()
          if b.lowering_by() == "lower-vectors"}


class _Lowering:
    """The rewrite, with the program's struct declarations at hand."""

    def __init__(self, structs: dict):
        self.structs = structs

    # ------------------------------------------------------------ statements

    def rewrite(self, n: Node) -> Node:
        if isinstance(n, Expr):
            return self.value(n)
        if isinstance(n, Assign):
            return self.assign(n)
        if isinstance(n, ExprStmt) and isinstance(n.expr, Append):
            return attrs.evolve(n, expr=self.push(n.expr))
        return map_children(n, self.rewrite)

    def assign(self, s: Assign):
        s = _concat_in_place(s)
        value = self.value(s.value)
        t = s.target.type
        if isinstance(s.target, Name) and not isinstance(t, _AGGREGATES):
            return attrs.evolve(s, value=value)
        place = self.place(s.target, write=True, insert=s.op == "=")
        if s.op == "=":
            op = V.Store(place=place, value=value, type=T.VOID, pos=s.pos)
        else:
            name = "vec-concat" if isinstance(t, T.VectorType) else s.op[:-1]
            op = V.StoreOp(op=name, place=place, value=value, type=T.VOID,
                           pos=s.pos)
        return ExprStmt(expr=op, pos=s.pos)

    # ------------------------------------------------------------ places

    def addressable(self, e: Expr) -> bool:
        """Whether `e` lives in memory: a variable, an element of a vector
        (every vector is in memory), an append's vector, or a field of
        something addressable."""
        if isinstance(e, (Name, Index, Append)):
            return True
        if isinstance(e, FieldAccess):
            return self.addressable(e.base)
        return False

    def field_index(self, struct: T.Type, name: str) -> int:
        for k, (fname, _) in enumerate(self.structs[struct.name]):
            if fname == name:
                return k
        raise AssertionError(f"no field {name} in {struct} after typecheck")

    def place(self, e: Expr, write: bool, insert: bool = False) -> V.Place:
        """The place of addressable `e`. On a write path every vector or
        map is read from its own place, `(load PLACE)`, so that
        insert-refcounts can make it unique; on a read path it is just read
        as a value. `insert`: e is the whole target of `lv = e`, where a
        map's element is inserted when absent (SPEC 13)."""
        if isinstance(e, Name):
            return V.VarAddr(name=e.name, type=e.type, pos=e.pos)
        if isinstance(e, Index) and isinstance(e.base.type, T.MapType):
            if insert:
                return V.MapInsertAddr(place=self.place(e.base, write=True),
                                       key=self.value(e.index), type=e.type,
                                       pos=e.pos)
            return V.MapAddr(map=self.container(e.base, write),
                             key=self.value(e.index),
                             check=V.KeyCheck(pos=e.pos), type=e.type,
                             pos=e.pos)
        if isinstance(e, Index):
            return V.ElemAddr(vec=self.container(e.base, write),
                              index=self.value(e.index),
                              check=V.BoundsCheck(pos=e.pos),
                              type=e.type, pos=e.pos)
        if isinstance(e, FieldAccess):
            return V.FieldAddr(base=self.place(e.base, write),
                               index=self.field_index(e.base.type, e.name),
                               name=e.name, type=e.type, pos=e.pos)
        if isinstance(e, Append):
            return self.push(e)
        raise AssertionError(f"no place for {type(e).__name__}")

    def container(self, base: Expr, write: bool) -> Expr:
        """The vector or map that an element or a map value is in: loaded
        from its place on a write path, its value on a read path."""
        if write:
            place = self.place(base, write=True)
            return V.Load(place=place, type=place.type, pos=base.pos)
        return self.value(base)

    def push(self, e: Append) -> V.VecPush:
        place = self.place(e.target, write=True)
        return V.VecPush(place=place, value=self.value(e.value),
                         type=e.type, pos=e.pos)

    # ------------------------------------------------------------ values

    def value(self, e: Expr) -> Expr:
        if isinstance(e, (Index, Append)):
            return V.Load(place=self.place(e, write=False), type=e.type,
                          pos=e.pos)
        if isinstance(e, FieldAccess):
            if self.addressable(e.base):
                return V.Load(place=self.place(e, write=False), type=e.type,
                              pos=e.pos)
            return V.FieldGet(value=self.value(e.base),
                              index=self.field_index(e.base.type, e.name),
                              name=e.name, type=e.type, pos=e.pos)
        if isinstance(e, Binary):
            lowered = self.binary(e)
            if lowered is not None:
                return lowered
        if isinstance(e, Call) and e.name in _NODES:
            return _NODES[e.name](self, e)
        return map_children(e, self.rewrite)

    def binary(self, e: Binary) -> Expr | None:
        t = e.left.type
        if not isinstance(t, _AGGREGATES):
            return None
        left, right = self.value(e.left), self.value(e.right)
        if e.op == "+":
            return V.VecConcat(left=left, right=right, type=e.type, pos=e.pos)
        if e.op in ("==", "!="):
            eq = V.ValueEq(left=left, right=right, type=T.BOOL, pos=e.pos)
            if e.op == "==":
                return eq
            return Unary(op="!", operand=eq, type=T.BOOL, pos=e.pos)
        if e.op in _ORDER:
            cmp = V.StringCmp(left=left, right=right, type=T.INT, pos=e.pos)
            zero = IntLit(value=0, type=T.INT, pos=e.pos)
            return Binary(op=e.op, left=cmp, right=zero, type=T.BOOL,
                          pos=e.pos)
        raise AssertionError(f"operator {e.op} on {t} after typecheck")


def run(prog: Program) -> Program:
    return _Lowering(V.struct_table(prog)).rewrite(prog)


def _concat_in_place(s: Assign) -> Assign:
    """`x = x + e` on a vector (or string) variable x is `x += e`: the same
    value (x's elements, then e's, e evaluated after x is read: a `::` on x
    in e makes store-op copy x first), appended in place when x is unique
    rather than copied whole, so building a string by `t = t + piece` in a
    loop is linear, not quadratic."""
    v = s.value
    if (s.op == "=" and isinstance(s.target, Name)
            and isinstance(s.target.type, T.VectorType)
            and isinstance(v, Binary) and v.op == "+"
            and isinstance(v.left, Name) and v.left.name == s.target.name):
        return attrs.evolve(s, op="+=", value=v.right)
    return s
