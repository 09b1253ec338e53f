"""The vector-lowered IR: the typed IR after `lower-vectors`, and the same
IR plus reference counting after `insert-refcounts`.

It is the typed IR (compiler/ir/surface.py, `type` set on every expression)
with every operation on vectors, strings and structs spelled out. Removed:
`Index`, `FieldAccess`, `Append`, a Binary whose operands are vectors or
structs (`+ == != < <= > >=` on them), the builtin call `len`, and an
Assign whose target is not a plain variable. Kept: everything on scalars,
`Name` (the value of a variable), `Assign` to a variable whose type is not
a vector or struct (`x = e`, `x op= e`), VarDecl, calls (`print` and `str`
included), Remote. Storing into a variable, element or field (store, and
Assign of a job handle) releases the value it replaces.

Places. Some nodes denote an address in memory rather than a value; they
are expressions whose `type` is the type of what is stored there, and they
appear only as the place operand of load, store, store-op, vec-push and
make-unique (and as the base of another place):

    var-addr NAME                 the slot of a local variable or parameter
    elem-addr VEC INDEX CHECK     element INDEX of the vector value VEC,
                                  after CHECK (a bounds-check holding the
                                  `[`'s position) has verified 0 <= INDEX < len;
                                  CHECK is `in-bounds@L:C` where
                                  eliminate-bounds-checks proved that already
    field-addr PLACE K NAME       field number K (NAME) of the struct at PLACE
    vec-push PLACE VALUE          (also an operation, below) the vector at
                                  PLACE, after VALUE has been appended to it
    map-addr MAP KEY CHECK        the value for KEY in the map value MAP,
                                  after CHECK (a key-check holding the `[`'s
                                  position) has found KEY there (SPEC 13)
    map-insert-addr PLACE KEY     the value for KEY in the map at PLACE, made
                                  unique first, KEY inserted with a zero
                                  value when absent: the place of `m[k] = e`
                                  alone (every other write needs the key)

A place is evaluated in two phases: first the operands that compute it (an
element's INDEX, and VEC when VEC is not read from a place), left to right;
then, when the operation needs the address, the loads of the vectors it goes
through, their bounds checks and (after insert-refcounts) make-unique steps.
On a read path (an elem-addr whose VEC is not a make-unique) VEC is a value
evaluated in phase 1, before INDEX (SPEC 11); when INDEX appends, that value
is held in a temporary (insert-refcounts), so the append cannot change it.
Store and store-op evaluate their VALUE between the two phases, which gives
SPEC section 11's order for `lv = e` (indices of lv, then e) and keeps every
address valid even when e appends to the vector lv goes through. A store-op
computes the address again after VALUE when VALUE contains a vec-push, and
then also holds a reference to the value it read (the push may move the
vector that value lives in). A vector store-op (`vec-concat`) may append
in place when the vector at PLACE is unique, which makes `s += x` in a
loop linear rather than quadratic.

Operations (all expressions; `type` as written):

    load PLACE                    the value stored at PLACE (borrowed, below)
    store PLACE VALUE :void       replace the value at PLACE by VALUE
    store-op OP PLACE VALUE :void PLACE = PLACE OP VALUE with PLACE evaluated
                                  once; the read (and its bounds check) comes
                                  before VALUE; OP is a scalar operator or
                                  `vec-concat`
    vec-push PLACE VALUE          evaluate VALUE (a copy of it), then append
                                  it to the vector at PLACE (making that
                                  vector unique first; amortized O(1))
    field-get VALUE K NAME        field K of a struct value that is not in a
                                  place (a call's result, say)
    vec-len VEC :int              number of elements
    vec-concat A B                a new vector holding A's elements then B's
    value-eq A B :bool            structural equality of two vectors or two
                                  structs (`!=` is `(unary ! (value-eq ..))`)
    string-cmp A B :int           lexicographic byte comparison, <0, 0 or >0;
                                  `a < b` on strings is `(string-cmp a b) < 0`
    map-has MAP KEY :bool         whether KEY is a key of MAP (SPEC 13)
    map-remove PLACE KEY :void    remove KEY from the map at PLACE (made
                                  unique first) if it is there
    map-keys MAP, map-values MAP  the keys, the values, in insertion order
    (vec-len of a map is its number of keys, value-eq compares two maps
    whatever their order)

Maps are values like vectors: a map variable is a pointer to a counted
map, copied by a retain and made unique before a write, so everything said
here of the vectors a write goes through holds of the maps too.

Reference counting (added by insert-refcounts; see its docstring for the
ownership convention). A value "holds references" when its type is a
vector, a job handle, or a struct with such a field, at any depth:

    retain VALUE                  VALUE with one more reference (a copy)
    release VALUE :void           drop an owned VALUE (a discarded result)
    make-unique PLACE             the vector at PLACE, first copied if any
                                  other reference to it exists (copy on
                                  write); used on the path of every write
    temp ID VALUE                 evaluate VALUE, an owned value used only by
                                  its consumer, and remember it as temporary
                                  ID (printed %N); yields it, borrowed
    release-after [ID..] BODY     evaluate BODY, then release the
                                  temporaries ID..; yields BODY's value
    release-var NAME (statement)  drop the reference held by variable NAME
    move NAME                     the value of variable NAME, owned: its
                                  reference is handed over and NAME is left
                                  holding the zero value (releasing that
                                  does nothing); only at NAME's last use
    owned-param NAME (statement)  the function owns parameter NAME (it
                                  writes it): callers pass it owned, and the
                                  function releases it itself; emits nothing
    return-releasing VALUE [NAMES] (statement) evaluate VALUE (or nothing),
                                  release the variables NAMES, then return

Invariants (check_lowered_vectors / check_refcounted below): no Index,
FieldAccess or Append remains; every expression is typed; an Assign targets
a Name; place nodes occur only in place positions; every elem-addr carries
a bounds-check; field indices match their struct's declaration; after
insert-refcounts, every temp ID is released by exactly one enclosing
release-after, the vector operand of an elem-addr on the path of a
store, store-op or vec-push is a make-unique (never a plain load), and
the vector operand of an elem-addr on a read path whose INDEX contains a
vec-push is a temp (or a string literal), never a borrowed read.
"""
from __future__ import annotations

import bisect
from typing import Optional

import attrs

from compiler.errors import Pos
from compiler.ir import types as T
from compiler.ir.surface import (Append, Assign, CharVectorLit, Expr,
                                 FieldAccess, Index, Name, Node, Stmt, node,
                                 pos_field, type_field)
from compiler.ir.walk import children, walk


# ---------------------------------------------------------------- places

@node
class Place(Expr):
    """Base of the nodes that denote an address (see the module docstring)."""


@node
class VarAddr(Place):
    """The slot of local variable or parameter `name`."""
    name: str
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class BoundsCheck(Node):
    """The check 0 <= index < len of an elem-addr; `pos` is the `[` where
    the runtime error `index I out of bounds for length N` points. The
    printer shows it as `bounds-check@LINE:COL`."""
    print_pos = True
    pos: Pos = pos_field()


@node
class InBounds(Node):
    """In place of an elem-addr's bounds-check: the access is proven in
    bounds (eliminate-bounds-checks: a counted loop's range, or its
    versioning guard, shows 0 <= index < len), so no check is emitted.
    `pos` is still the `[`. Printed `in-bounds@LINE:COL`."""
    print_pos = True
    pos: Pos = pos_field()


@node
class ElemAddr(Place):
    """Element `index` of vector value `vec`, bounds-checked by `check`
    (a BoundsCheck, or InBounds after eliminate-bounds-checks)."""
    vec: Expr
    index: Expr
    check: BoundsCheck
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class KeyCheck(Node):
    """The presence check of a map-addr; `pos` is the `[` where the runtime
    error `key K not in map` points. Printed `key-check@LINE:COL`."""
    print_pos = True
    pos: Pos = pos_field()


@node
class MapAddr(Place):
    """The value for `key` in map value `map`, which `check` finds there."""
    map: Expr
    key: Expr
    check: KeyCheck
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class MapInsertAddr(Place):
    """The value for `key` in the map at `place` (made unique), inserted
    with the zero value when absent. pos is the `[`."""
    place: Place
    key: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class FieldAddr(Place):
    """Field number `index` (called `name`) of the struct at place `base`."""
    base: Place
    index: int
    name: str
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class VecPush(Place):
    """`place :: value`: append (a copy of) `value` to the vector at
    `place`; as a place, that vector afterwards. pos is the `::`."""
    place: Place
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


# ---------------------------------------------------------------- operations

@node
class Load(Expr):
    place: Place
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class Store(Expr):
    """Replace the value at `place` by `value` (type void)."""
    place: Place
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class StoreOp(Expr):
    """`place op= value` with place evaluated once (type void). `op` is one
    of + - * / % on scalars, or `vec-concat`; pos is the operator."""
    op: str
    place: Place
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class FieldGet(Expr):
    """Field number `index` (`name`) of struct value `value`."""
    value: Expr
    index: int
    name: str
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class VecLen(Expr):
    vec: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class VecConcat(Expr):
    left: Expr
    right: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class ValueEq(Expr):
    """Structural equality of two vectors or two structs; pos is the
    operator."""
    left: Expr
    right: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class StringCmp(Expr):
    left: Expr
    right: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class MapHas(Expr):
    map: Expr
    key: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class MapRemove(Expr):
    """Remove `key` from the map at `place` (type void); pos is `remove`."""
    place: Place
    key: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class MapKeys(Expr):
    map: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class MapValues(Expr):
    map: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


# ---------------------------------------------------------------- refcounts

@node
class MakeUnique(Expr):
    """The vector at `place`, copied first if it is shared."""
    place: Place
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class Retain(Expr):
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class Release(Expr):
    """Drop the owned `value` (type void)."""
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class Temp(Expr):
    """Evaluate `value` (owned) and keep it as temporary `id` (`%N`) until
    the enclosing release-after; yields it borrowed."""
    id: str
    value: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class ReleaseAfter(Expr):
    """Evaluate `body`, then release the temporaries `temps`."""
    temps: tuple  # of str ids
    body: Expr
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class ReleaseVar(Stmt):
    name: str
    type: T.Type
    pos: Pos = pos_field()


@node
class OwnedParam(Stmt):
    """The function owns parameter `name`: its callers pass it owned
    (retained, or moved out of a variable at its last use), and the
    function releases it itself. Emits nothing; it states the calling
    convention for the callers, the job wrapper and the checks."""
    name: str
    type: T.Type
    pos: Pos = pos_field()


@node
class Move(Expr):
    """The value of variable `name`, owned: the variable's reference is
    handed over and the variable is left holding the zero value (an empty
    vector, map or struct, an unset handle), whose release does nothing.
    Placed only at a last use of the variable (compiler/ir/liveness.py)."""
    name: str
    type: Optional[T.Type] = type_field()
    pos: Pos = pos_field()


@node
class ReturnReleasing(Stmt):
    """Evaluate `value` (None for `return;`), release the variables named
    in `releases`, then return."""
    value: Optional[Expr]
    releases: tuple  # of str
    pos: Pos = pos_field()


PLACE_OPERATIONS = (Load, Store, StoreOp, MakeUnique)


def owned_params(fn) -> set:
    """Names of the parameters that function `fn` (after insert-refcounts)
    takes owned: the owned-param statements at the top of its body."""
    return {s.name for s in fn.body.stmts if isinstance(s, OwnedParam)}


# ---------------------------------------------------------------- types

def struct_table(prog) -> dict:
    """struct name -> tuple of (field name, field type), from a Program."""
    from compiler.ir.surface import StructDecl
    return {d.name: tuple((f.name, f.type) for f in d.fields)
            for d in prog.decls if isinstance(d, StructDecl)}


def holds_refs(t: T.Type, structs: dict, handles: bool = True) -> bool:
    """Whether a value of type `t` holds references (a vector, a job handle,
    or a struct with such a field at any depth): the types whose copies and
    drops insert-refcounts makes explicit. With handles=False job handles
    do not count."""
    if isinstance(t, (T.VectorType, T.MapType)):
        return True
    if isinstance(t, T.JobType):
        return handles
    if isinstance(t, T.StructType):
        return any(holds_refs(ft, structs, handles) for _, ft in structs[t.name])
    return False


# ---------------------------------------------------------------- checks

def _check_places(prog, structs: dict, proven_ok: bool = True) -> None:
    place_parents = (Load, Store, StoreOp, MakeUnique, FieldAddr, VecPush,
                     MapInsertAddr, MapRemove)
    for n in walk(prog):
        assert not isinstance(n, (Index, FieldAccess, Append)), \
            f"{type(n).__name__} left after lower-vectors"
        if isinstance(n, Assign):
            assert isinstance(n.target, Name), f"assignment to {n.target}"
        if isinstance(n, Expr):
            assert n.type is not None, f"untyped expression {n}"
        if isinstance(n, ElemAddr):
            assert isinstance(n.check, (BoundsCheck, InBounds)
                              if proven_ok else BoundsCheck), \
                f"elem-addr check {n.check}"
            assert isinstance(n.vec.type, T.VectorType)
            assert n.type == n.vec.type.elem
        if isinstance(n, MapAddr):
            assert isinstance(n.check, KeyCheck)
            assert isinstance(n.map.type, T.MapType)
            assert n.type == n.map.type.value and n.key.type == n.map.type.key
        if isinstance(n, (MapInsertAddr, MapRemove)):
            assert isinstance(n.place, Place), f"{n} needs a place"
            assert isinstance(n.place.type, T.MapType)
        if isinstance(n, (FieldAddr, FieldGet)):
            inner = n.base if isinstance(n, FieldAddr) else n.value
            fields = structs[inner.type.name]
            assert fields[n.index] == (n.name, n.type), f"bad field index {n}"
        for c in children(n):
            if isinstance(c, Place) and not isinstance(n, place_parents):
                # Only an expression statement may evaluate a vec-push alone.
                assert isinstance(c, VecPush) and not isinstance(n, Expr), \
                    f"place {c} used as a value in {n}"
        if isinstance(n, FieldAddr) or isinstance(n, place_parents[:4]):
            place = n.base if isinstance(n, FieldAddr) else n.place
            assert isinstance(place, Place), f"{n} needs a place"


def check_lowered_vectors(prog, proven_ok: bool = False) -> None:
    """Invariants after lower-vectors (every elem-addr bounds-checked
    unless `proven_ok`: after eliminate-bounds-checks)."""
    structs = struct_table(prog)
    _check_places(prog, structs, proven_ok)
    for n in walk(prog):
        assert not isinstance(n, (MakeUnique, Retain, Release, Temp,
                                  ReleaseAfter, ReleaseVar, OwnedParam,
                                  Move, ReturnReleasing)), \
            f"reference counting before insert-refcounts: {n}"


def _write_paths(place):
    """The elem-addr nodes on the path of a write to `place`, up to the
    first vec-push on it: that push is itself a write whose path the
    checker follows when its walk gets there (so a chain `v :: 1 :: 1 ...`
    is followed once, not once per `::`)."""
    while True:
        if isinstance(place, (ElemAddr, MapAddr)):
            yield place
            vec = place.vec if isinstance(place, ElemAddr) else place.map
            if isinstance(vec, (MakeUnique, Load)):
                place = vec.place
                continue
            return
        if isinstance(place, MapInsertAddr):
            place = place.place
            continue
        if isinstance(place, FieldAddr):
            place = place.base
            continue
        return


def check_refcounted(prog) -> None:
    """Invariants after insert-refcounts."""
    structs = struct_table(prog)
    _check_places(prog, structs)
    _check_moves(prog)
    released: dict[str, int] = {}
    made: dict[str, int] = {}
    # Each release-after's temps must be made inside its body. Checked
    # with one walk that numbers the nodes in pre-order: a body's nodes are
    # the numbers after its own up to its end, so the check is a binary
    # search among the numbers of the temp's nodes (a nested chain of
    # release-afters, one per `::` of a long chain, stays linear).
    temp_at: dict[str, list[int]] = {}
    bodies: list = []  # (release-after, body's first number, its end)
    for k, (n, end) in enumerate(_walk_numbered(prog)):
        if isinstance(n, ReleaseAfter):
            for t in n.temps:
                released[t] = released.get(t, 0) + 1
            bodies.append((n, k, end))
        if isinstance(n, Temp):
            made[n.id] = made.get(n.id, 0) + 1
            temp_at.setdefault(n.id, []).append(k)
        if isinstance(n, (Store, StoreOp, VecPush, MapRemove)):
            for ea in _write_paths(n.place):
                inner = ea.vec if isinstance(ea, ElemAddr) else ea.map
                assert not isinstance(inner, Load), \
                    f"write through a vector or map without make-unique: {n}"
        if isinstance(n, (ElemAddr, MapAddr)):
            inner, index = ((n.vec, n.index) if isinstance(n, ElemAddr)
                            else (n.map, n.key))
            if not isinstance(inner, MakeUnique) \
                    and any(isinstance(m, VecPush) for m in walk(index)):
                assert isinstance(inner, (Temp, CharVectorLit)), \
                    f"element read whose index appends, from a borrowed value: {n}"
    for n, first, end in bodies:
        for t in n.temps:
            at = temp_at.get(t, ())
            i = bisect.bisect_right(at, first)
            assert i < len(at) and at[i] < end, \
                f"release-after of unknown temps {n}"
    assert made == released, f"temporaries made {made} != released {released}"


def _check_moves(prog) -> None:
    """A move takes a variable that its body owns: a local, or a parameter
    the function takes owned (never one borrowed from the caller)."""
    from compiler.ir.surface import FuncDecl, MasterDecl, VarDecl
    for d in prog.decls:
        if not isinstance(d, (FuncDecl, MasterDecl)):
            continue
        owned = owned_params(d) if isinstance(d, FuncDecl) else set()
        nodes = list(walk(d.body))
        owned |= {n.name for n in nodes if isinstance(n, VarDecl)}
        for n in nodes:
            if isinstance(n, Move):
                assert n.name in owned, f"move of {n.name}, which is not owned"


def _walk_numbered(node) -> list:
    """(n, end) for `node` and each descendant in pre-order, the k-th pair
    being numbered k; end is the number just past n's last descendant."""
    order: list = []
    ends: list[int] = []
    stack = [(node, False)]
    while stack:
        n, done = stack.pop()
        if done:
            ends[n] = len(order)
            continue
        k = len(order)
        order.append(n)
        ends.append(0)
        stack.append((k, True))
        stack.extend((c, False) for c in reversed(list(children(n))))
    return list(zip(order, ends))
