"""Code generation for the nodes of the vector-lowered, refcounted IR
(compiler/ir/vectors.py): places, element operations and reference
counting. A mixin of compiler/codegen/functions.py:FunctionEmitter, which
provides `b` (the builder), `expr`, `lookup`, `alloca`, `arith` and the
module context (`types`, `values`, `rt`).

Places are evaluated in the two phases that vectors.py describes:
`place(p)` runs phase 1 (the operands: indices, rvalue vectors, and the
appends of vec-push, left to right; on a read path, `g[i][j]`, the read of
g[i] with its bounds check too, before j; when j appends, g[i] is held in a
temp) and returns phase 2, a function that emits the rest (loads of the vectors on the path, make-unique steps, bounds
checks) and returns (address, in_memory) — in_memory is False for a local
variable's slot, where bool is i1, and True for elements and fields, where
bool is i8. Phase 2 may be emitted more than once (a store-op whose value
appends recomputes its address); each emission is self-contained.

Copy on write in loops: a vector variable that a loop writes through
(make-unique of its var-addr) is made unique once before the loop when
nothing in the loop can share it again (`loop_unique_vars`); inside the
loop its make-unique is then a plain read, which lets LLVM keep the
vector, its length and its data pointer in registers. Making a vector
unique earlier than its first write is invisible to the program.

Bounds checks compare the index as unsigned against the length (so a
negative index fails too) and branch to a cold call of ms_index_error.
Vector retain/release/len/unique/push go through the small always-inlined
helpers of compiler/codegen/values.py.
"""
from __future__ import annotations

from llvmlite import ir

from compiler.codegen import llvm_types as CT
from compiler.codegen.llvm_types import I8, I32, I64, PTR
from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.surface import Call, Name, VarDecl
from compiler.ir.walk import walk


def _contains_push(e) -> bool:
    return any(isinstance(n, V.VecPush) for n in walk(e))


def _names_in(node) -> set:
    return {n.name for n in walk(node) if isinstance(n, (Name, V.VarAddr))}


def loop_unique_vars(parts, functions) -> set:
    """Names of the variables bound outside a loop (whose cond, body and
    step are `parts`) that the loop writes through and cannot share: no
    retain of anything read from them, no move out of them, no store
    replacing them, no `+=`
    that reads them (it may share its operand), no call of a user
    function given them (it may return them), no declaration shadowing
    them."""
    written, excluded = set(), set()
    for part in parts:
        if part is None:
            continue
        for n in walk(part):
            if isinstance(n, V.MakeUnique) and isinstance(n.place, V.VarAddr):
                written.add(n.place.name)
            elif isinstance(n, V.Retain):
                excluded |= _names_in(n.value)
            elif isinstance(n, V.Move):
                excluded.add(n.name)
            elif isinstance(n, (V.Store, V.StoreOp)):
                if isinstance(n.place, V.VarAddr):
                    excluded.add(n.place.name)
                if isinstance(n, V.StoreOp) and n.op == "vec-concat":
                    excluded |= _names_in(n.value)
            elif isinstance(n, Call) and n.name in functions:
                for a in n.args:
                    excluded |= _names_in(a)
            elif isinstance(n, VarDecl):
                excluded.add(n.name)
    return written - excluded


class VectorEmitter:
    """expr_* methods for the vector node kinds, and place evaluation."""

    # ------------------------------------------------------------ helpers

    def vec_len(self, v: ir.Value) -> ir.Value:
        return self.b.call(self.values.vec_len(), [v])

    def elem_ptr(self, v: ir.Value, index: ir.Value, t: T.Type) -> ir.Value:
        """Address of element `index` (already checked) of non-empty v."""
        b = self.b
        data = b.gep(b.bitcast(v, PTR), [ir.Constant(I64, CT.VEC_HEADER)],
                     inbounds=True)
        typed = b.bitcast(data, self.types.mem_type(t).as_pointer())
        return b.gep(typed, [index], inbounds=True)

    def bounds_check(self, v, index, pos) -> None:
        n = self.vec_len(v)
        bad = self.b.icmp_unsigned(">=", index, n)
        with self.b.if_then(bad, likely=False):
            self.b.call(self.rt.fn("ms_index_error"),
                        [index, n, ir.Constant(I32, pos.line),
                         ir.Constant(I32, pos.col)])
            self.b.unreachable()

    def make_unique(self, ptr: ir.Value, t: T.Type) -> ir.Value:
        if ptr in self.known_unique:
            return self.b.load(ptr)
        return self.b.call(self.values.vec_unique(),
                           [self.values.descriptor(t), ptr])

    def _tag(self, instr, mem: bool, t: T.Type):
        """Element and field accesses of scalars carry the "data" TBAA tag
        (compiler/codegen/values.py:Values.tbaa)."""
        if mem and not isinstance(t, T.StructType):
            instr.set_metadata("tbaa", self.values.tbaa("data"))
        return instr

    def load_raw(self, ptr, mem: bool, t: T.Type) -> ir.Value:
        """The value at ptr in its memory representation."""
        return self._tag(self.b.load(ptr), mem, t)

    def load_from(self, ptr, mem: bool, t: T.Type) -> ir.Value:
        v = self.load_raw(ptr, mem, t)
        return self.types.from_mem(self.b, v, t) if mem else v

    def store_to(self, ptr, mem: bool, value, t: T.Type) -> None:
        value = self.types.to_mem(self.b, value, t) if mem else value
        self._tag(self.b.store(value, ptr), mem, t)

    def spill(self, value: ir.Value, t: T.Type) -> ir.Value:
        """`value` stored in a fresh stack slot; an i8* to it."""
        slot = self._entry.alloca(self.types.mem_type(t))
        self.b.store(value, slot)
        return self.b.bitcast(slot, PTR)

    def enter_loop(self, parts) -> list:
        """Before a loop: make its unsharable written vectors unique now
        (see the module docstring); returns them, for leave_loop."""
        names = loop_unique_vars(parts, self.mod.functions)
        added = []
        for name in sorted(names):
            slot = self.lookup_name(name)
            if slot in self.known_unique:
                continue
            self.make_unique(slot, self.slot_types[slot])
            self.known_unique.add(slot)
            added.append(slot)
        return added

    def leave_loop(self, added) -> None:
        self.known_unique.difference_update(added)

    # ------------------------------------------------------------ places

    def place(self, p):
        """Phase 1 of place p; returns phase 2 (see the module docstring)."""
        if isinstance(p, V.VarAddr):
            slot = self.lookup_name(p.name)
            return lambda: (slot, False)
        if isinstance(p, V.ElemAddr):
            return self._elem_place(p)
        if isinstance(p, V.MapAddr):
            return self._map_place(p)
        if isinstance(p, V.MapInsertAddr):
            inner = self.place(p.place)
            key = self.expr(p.key)

            def insert():
                ptr, _ = inner()   # a unique map stays unique
                slot = self.b.call(self.rt.fn("ms_map_insert"),
                                   [self.values.descriptor(p.place.type), ptr,
                                    self.key_ptr(key, p.key.type)])
                return self.typed_value_ptr(slot, p.type), True
            return insert
        if isinstance(p, V.FieldAddr):
            inner = self.place(p.base)

            def field():
                ptr, _ = inner()
                return self.b.gep(ptr, [ir.Constant(I32, 0),
                                        ir.Constant(I32, p.index)],
                                  inbounds=True), True
            return field
        if isinstance(p, V.VecPush):
            inner = self.place(p.place)
            value = self.expr(p.value)
            ptr, _ = inner()
            t = p.type
            size = self.types.layout(t.elem)[0]
            slot = self.b.call(self.values.vec_push(),
                               [self.values.descriptor(t), ptr,
                                ir.Constant(I64, size)])
            typed = self.b.bitcast(slot, self.types.mem_type(t.elem).as_pointer())
            self.store_to(typed, True, value, t.elem)
            return inner
        raise AssertionError(f"unknown place {p}")

    def _container(self, vec):
        """Phase 1 of the vector (or map) that an element (or a map's
        value) is in; returns phase 2, which yields that container."""
        if isinstance(vec, V.MakeUnique):
            inner = self.place(vec.place)

            def unique():
                ptr, _ = inner()
                return self.make_unique(ptr, vec.type)
            return unique
        if isinstance(vec, Name):
            # Loaded in phase 2: j cannot append (else insert-refcounts
            # would have held v in a temp), so nothing changes v before.
            slot = self.lookup_name(vec.name)
            return lambda: self.load_raw(slot, False, vec.type)
        # A read path (g[i][j]): the vector g[i] is read, and i checked,
        # before j is evaluated (left to right). When j appends, vec is a
        # temp holding a reference to that vector (insert-refcounts), which
        # the append then copies rather than changes.
        rvalue = self.expr(vec)
        return lambda: rvalue

    def _elem_place(self, p: V.ElemAddr):
        container = self._container(p.vec)
        index = self.expr(p.index)

        def elem():
            v = container()
            if isinstance(p.check, V.BoundsCheck):  # InBounds: proven
                self.bounds_check(v, index, p.check.pos)
            return self.elem_ptr(v, index, p.type), True
        return elem

    def _map_place(self, p: V.MapAddr):
        """Like _elem_place: the map (a value on a read path, read before
        the key; made unique in phase 2 on a write path), then the key;
        phase 2 finds the key or raises `key K not in map` at the `[`."""
        container = self._container(p.map)
        key = self.expr(p.key)

        def found():
            slot = self.b.call(self.rt.fn("ms_map_get"),
                               [self.values.descriptor(p.map.type), container(),
                                self.key_ptr(key, p.key.type),
                                ir.Constant(I32, p.check.pos.line),
                                ir.Constant(I32, p.check.pos.col)])
            return self.typed_value_ptr(slot, p.type), True
        return found

    def key_ptr(self, key: ir.Value, t: T.Type) -> ir.Value:
        """An i8* to a stack copy of `key` in memory form (bool as i8)."""
        return self.spill(self.types.to_mem(self.b, key, t), t)

    def typed_value_ptr(self, slot: ir.Value, t: T.Type) -> ir.Value:
        return self.b.bitcast(slot, self.types.mem_type(t).as_pointer())

    # ------------------------------------------------------------ operations

    def expr_MapHas(self, e: V.MapHas) -> ir.Value:
        m = self.expr(e.map)
        key = self.expr(e.key)
        r = self.b.call(self.rt.fn("ms_map_has"),
                        [self.values.descriptor(e.map.type), m,
                         self.key_ptr(key, e.key.type)])
        return self.b.icmp_unsigned("!=", r, ir.Constant(I8, 0))

    def expr_MapRemove(self, e: V.MapRemove) -> None:
        resolve = self.place(e.place)
        key = self.expr(e.key)
        ptr, _ = resolve()
        self.b.call(self.rt.fn("ms_map_remove"),
                    [self.values.descriptor(e.place.type), ptr,
                     self.key_ptr(key, e.key.type)])
        return None

    def expr_MapKeys(self, e: V.MapKeys) -> ir.Value:
        return self.b.call(self.rt.fn("ms_map_keys"),
                           [self.values.descriptor(e.map.type),
                            self.expr(e.map)])

    def expr_MapValues(self, e: V.MapValues) -> ir.Value:
        return self.b.call(self.rt.fn("ms_map_values"),
                           [self.values.descriptor(e.map.type),
                            self.expr(e.map)])

    def expr_VarAddr(self, e):
        raise AssertionError(f"place {e} used as a value")

    def expr_Load(self, e: V.Load) -> ir.Value:
        ptr, mem = self.place(e.place)()
        return self.load_from(ptr, mem, e.type)

    def expr_VecPush(self, e: V.VecPush) -> None:
        self.place(e)           # an append whose vector is not used
        return None

    def expr_MakeUnique(self, e: V.MakeUnique) -> ir.Value:
        ptr, _ = self.place(e.place)()
        return self.make_unique(ptr, e.type)

    def expr_Store(self, e: V.Store) -> None:
        resolve = self.place(e.place)
        value = self.expr(e.value)
        ptr, mem = resolve()
        t = e.place.type
        if self.types.has_refs(t):
            old = self.load_raw(ptr, mem, t)
            self.store_to(ptr, mem, value, t)
            self.values.release(self.b, old, t)
        else:
            self.store_to(ptr, mem, value, t)
        return None

    def expr_StoreOp(self, e: V.StoreOp) -> None:
        resolve = self.place(e.place)
        ptr, mem = resolve()
        t = e.place.type
        again = _contains_push(e.value)
        if e.op != "vec-concat":
            old = self.load_from(ptr, mem, t)
            value = self.expr(e.value)
            if again:
                ptr, mem = resolve()
            self.store_to(ptr, mem, self.arith(e.op, old, value, t, e.pos), t)
            return None
        if not again:
            # The vector at ptr stays put while the value is computed (only
            # an append could move it): append in place when unique.
            value = self.expr(e.value)
            self.b.call(self.values.vec_append_all(),
                        [self.values.descriptor(t), ptr, value])
            return None
        old = self.load_raw(ptr, mem, t)
        self.values.retain(self.b, old, t)   # the append may drop it
        value = self.expr(e.value)
        ptr, mem = resolve()
        new = self.b.call(self.rt.fn("ms_vec_concat"),
                          [self.values.descriptor(t), old, value])
        replaced = self.load_raw(ptr, mem, t)
        self.store_to(ptr, mem, new, t)
        self.values.release(self.b, replaced, t)
        self.values.release(self.b, old, t)
        return None

    def expr_FieldGet(self, e: V.FieldGet) -> ir.Value:
        value = self.expr(e.value)
        return self.types.from_mem(self.b, self.b.extract_value(value, e.index),
                                   e.type)

    def expr_VecLen(self, e: V.VecLen) -> ir.Value:
        return self.vec_len(self.expr(e.vec))

    def expr_VecConcat(self, e: V.VecConcat) -> ir.Value:
        left = self.expr(e.left)
        right = self.expr(e.right)
        return self.b.call(self.rt.fn("ms_vec_concat"),
                           [self.values.descriptor(e.type), left, right])

    def expr_ValueEq(self, e: V.ValueEq) -> ir.Value:
        left = self.expr(e.left)
        right = self.expr(e.right)
        t = e.left.type
        eq = self.b.call(self.rt.fn("ms_value_eq"),
                         [self.values.descriptor(t), self.spill(left, t),
                          self.spill(right, t)])
        return self.b.icmp_unsigned("!=", eq, ir.Constant(I8, 0))

    def expr_StringCmp(self, e: V.StringCmp) -> ir.Value:
        left = self.expr(e.left)
        right = self.expr(e.right)
        r = self.b.call(self.rt.fn("ms_string_cmp"), [left, right])
        return self.b.sext(r, I64)

    def expr_CharVectorLit(self, e) -> ir.Value:
        return self.values.string_literal(bytes(e.value))

    # ------------------------------------------------------------ refcounts

    def expr_Retain(self, e: V.Retain) -> ir.Value:
        v = self.expr(e.value)
        self.values.retain(self.b, v, e.type)
        return v

    def expr_Release(self, e: V.Release) -> None:
        v = self.expr(e.value)
        self.values.release(self.b, v, e.value.type)
        return None

    def expr_Temp(self, e: V.Temp) -> ir.Value:
        v = self.expr(e.value)
        self.temps[e.id] = (v, e.type)
        return v

    def expr_ReleaseAfter(self, e: V.ReleaseAfter) -> ir.Value:
        v = self.expr(e.body)
        for t in e.temps:
            value, ty = self.temps.pop(t)
            self.values.release(self.b, value, ty)
        return v

    def stmt_ReleaseVar(self, s: V.ReleaseVar) -> None:
        slot = self.release_slot(s.name, s.type)
        self.values.release(self.b, self.b.load(slot), s.type)

    def stmt_OwnedParam(self, s: V.OwnedParam) -> None:
        pass        # the caller passed it owned: nothing to do here

    def expr_Move(self, e: V.Move) -> ir.Value:
        slot = self.lookup_name(e.name)
        value = self.b.load(slot)
        self.b.store(self.types.zero_value(e.type), slot)
        return value

    def stmt_ReturnReleasing(self, s: V.ReturnReleasing) -> None:
        value = None
        if s.value is not None:
            value = self.expr(s.value)
        for slot, t in self.return_slots(s):
            self.values.release(self.b, self.b.load(slot), t)
        if value is None or s.value.type == T.VOID:
            self.b.ret_void()
        else:
            self.b.ret(value)
