"""Module-level support for vectors, strings and structs in codegen: ms_type
descriptors, string literal constants, and small internal helper functions
(reference counting, length, copy on write, append) that LLVM inlines.

Descriptors (ms_abi.h part C, LLVM type {i32, i32, i32, i32, ptr, ptr, ptr,
ptr}) are emitted once per type that a runtime call needs, named
`ms.type.<type>`; a struct's descriptor has its field-type table
`ms.type.<type>.fields` and offset table `ms.type.<type>.offsets`. A
recursive struct (through a vector) makes a cycle of descriptors, which
works because each global is registered before its initializer is built.

String literals are immortal constant vectors {MS_RC_IMMORTAL, n, n,
bytes}, one per distinct text, `ms.lit.N`; "" is the null (empty) vector.

Helpers (internal, alwaysinline), each taking and returning what ms_abi.h
says of the matching runtime call:
  ms.vec.len(v) -> i64              0 for null
  ms.vec.retain(v)                  skip null and immortal
  ms.vec.release(vt, v)             skip null and immortal; calls
                                    ms_vec_release at the last reference
  ms.vec.unique(vt, vp) -> v        calls ms_vec_unique only when shared
  ms.vec.push(vt, vp, esz) -> elem  in-place fast path when unique with room
  ms.retain.<struct> / ms.release.<struct>(value)  field by field
Everything is created on first use, so the module text is deterministic.
"""
from __future__ import annotations

from llvmlite import ir

from compiler.codegen import llvm_types as CT
from compiler.codegen.llvm_types import I1, I8, I32, I64, PTR, VEC, VEC_PTR, VOID
from compiler.ir import types as T


def _type_key(t: T.Type) -> str:
    if isinstance(t, T.JobType):
        return "job"
    return str(t).replace(" ", ".")


# Calls of helpers beyond which a function keeps them as calls instead of
# inlining them (a `v :: 1;` statement makes one; a loop body a few).
HUGE_FUNCTION = 300


class Values:
    """Descriptors, literals and helper functions of one module."""

    def __init__(self, module: ir.Module, rt, types: CT.Types):
        self.module = module
        self.rt = rt
        self.types = types
        self._desc: dict[str, ir.GlobalVariable] = {}
        self._lits: dict[bytes, ir.GlobalVariable] = {}
        self._helpers: dict[str, ir.Function] = {}
        self._tbaa: dict[str, ir.MDValue] = {}

    # ------------------------------------------------------------ aliasing

    def tbaa(self, what: str) -> ir.MDValue:
        """The TBAA access tag of `what`: "header" for the refcount, len and
        cap words of vectors, "data" for scalars inside elements and
        fields. Compiled code never accesses one piece of memory under both
        tags, so LLVM may assume that storing an element does not change a
        vector's length or count (and keep those in registers in loops)."""
        tag = self._tbaa.get(what)
        if tag is None:
            root = self._tbaa.get("root")
            if root is None:
                root = self._tbaa["root"] = self.module.add_metadata(
                    [ir.MetaDataString(self.module, "ms.tbaa")])
            node = self.module.add_metadata(
                [ir.MetaDataString(self.module, f"ms.{what}"), root,
                 ir.Constant(I64, 0)])
            tag = self.module.add_metadata([node, node, ir.Constant(I64, 0)])
            self._tbaa[what] = tag
        return tag

    def header_load(self, b, v, k: int) -> ir.Value:
        instr = b.load(self.field_ptr(b, v, k), align=8)
        instr.set_metadata("tbaa", self.tbaa("header"))
        return instr

    def header_store(self, b, value, v, k: int) -> None:
        instr = b.store(value, self.field_ptr(b, v, k), align=8)
        instr.set_metadata("tbaa", self.tbaa("header"))

    # ------------------------------------------------------------ descriptors

    def descriptor(self, t: T.Type) -> ir.Value:
        """An i8* to the ms_type constant of `t`."""
        key = _type_key(t)
        g = self._desc.get(key)
        if g is None:
            g = ir.GlobalVariable(self.module, CT.TYPE_DESC,
                                  name=f"ms.type.{key}")
            g.linkage = "private"
            g.global_constant = True
            self._desc[key] = g
            g.initializer = self._descriptor_init(t, key)
        return g.bitcast(PTR)

    def _descriptor_init(self, t: T.Type, key: str) -> ir.Constant:
        types = self.types
        size, _, offsets = types.layout(t)
        null = ir.Constant(PTR, None)
        elem = fields = offs = name = null
        nfields = 0
        if isinstance(t, T.JobType):
            kind = CT.KIND["job"]
        elif isinstance(t, T.VectorType):
            kind = CT.KIND["vector"]
            elem = self.descriptor(t.elem)
        elif isinstance(t, (T.StructType, T.MapType)):
            if isinstance(t, T.MapType):
                kind = CT.KIND["map"]
                ftypes = [t.key, t.value]
                offsets = (0, 0)
                elem = self.descriptor(t.value)
            else:
                kind = CT.KIND["struct"]
                ftypes = [ft for _, ft in types.structs[t.name]]
            nfields = len(ftypes)
            arr_t = ir.ArrayType(PTR, nfields)
            fg = self._private(f"ms.type.{key}.fields", arr_t, ir.Constant(
                arr_t, [self.descriptor(ft) for ft in ftypes]))
            off_t = ir.ArrayType(I32, nfields)
            og = self._private(f"ms.type.{key}.offsets", off_t, ir.Constant(
                off_t, [ir.Constant(I32, o) for o in offsets]))
            fields, offs = fg.bitcast(PTR), og.bitcast(PTR)
            if isinstance(t, T.StructType):
                name = self.rt.cstring_const(t.name)
        else:
            kind = CT.KIND[str(t)]
        return ir.Constant(CT.TYPE_DESC, [
            ir.Constant(I32, kind), ir.Constant(I32, size),
            ir.Constant(I32, 1 if types.has_refs(t) else 0),
            ir.Constant(I32, nfields), elem, fields, offs, name])

    def _private(self, name, ty, init) -> ir.GlobalVariable:
        g = ir.GlobalVariable(self.module, ty, name=name)
        g.linkage = "private"
        g.global_constant = True
        g.initializer = init
        return g

    # ------------------------------------------------------------ literals

    def string_literal(self, data: bytes) -> ir.Value:
        """The immortal constant vector holding `data` (null when empty)."""
        if not data:
            return ir.Constant(VEC_PTR, None)
        g = self._lits.get(data)
        if g is None:
            arr = ir.ArrayType(I8, len(data))
            ty = ir.LiteralStructType([I64, I64, I64, arr])
            n = ir.Constant(I64, len(data))
            g = self._private(f"ms.lit.{len(self._lits)}", ty, ir.Constant(
                ty, [ir.Constant(I64, CT.IMMORTAL), n, n,
                     ir.Constant(arr, bytearray(data))]))
            g.unnamed_addr = True
            g.align = 8
            self._lits[data] = g
        return g.bitcast(VEC_PTR)

    # ------------------------------------------------------------ helpers

    def _helper(self, name: str, ret, params) -> tuple:
        """(function, builder at its entry, is_new)."""
        fn = self._helpers.get(name)
        if fn is not None:
            return fn, None, False
        fn = ir.Function(self.module, ir.FunctionType(ret, params), name=name)
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        fn.attributes.add("nounwind")
        self._helpers[name] = fn
        return fn, ir.IRBuilder(fn.append_basic_block("entry")), True

    def keep_helper_calls(self, fn: ir.Function) -> None:
        """In a function with more than HUGE_FUNCTION calls of helpers, mark
        each of them `noinline` (a call-site attribute, which wins over
        the helper's alwaysinline): inlining a fast path into every one of
        thousands of statements makes LLVM's optimizer and code generator
        take time quadratic in the function's size (docs/architecture.md,
        "Compile time"). Smaller functions keep their inlined fast paths."""
        helpers = set(self._helpers.values())
        calls = [instr for b in fn.blocks for instr in b.instructions
                 if isinstance(instr, ir.CallInstr) and instr.callee in helpers]
        if len(calls) > HUGE_FUNCTION:
            for call in calls:
                call.attributes.add("noinline")

    def vec_len(self) -> ir.Function:
        """ms.vec.len(v): reads the length from v, or from a constant empty
        header when v is null, without a branch, so that LLVM may hoist the
        read out of loops."""
        fn, b, new = self._helper("ms.vec.len", I64, [VEC_PTR])
        if new:
            v, = fn.args
            empty = self.module.globals.get("ms.vec.empty")
            if empty is None:
                empty = self._private("ms.vec.empty", VEC, ir.Constant(
                    VEC, [ir.Constant(I64, CT.IMMORTAL), ir.Constant(I64, 0),
                          ir.Constant(I64, 0)]))
                empty.align = 8
            isnull = b.icmp_unsigned("==", v, ir.Constant(VEC_PTR, None))
            b.ret(self.header_load(b, b.select(isnull, empty, v), 1))
        return fn

    @staticmethod
    def field_ptr(b, v, k: int):
        """Pointer to header word k (0 refcount, 1 len, 2 cap) of vector v."""
        return b.gep(v, [ir.Constant(I32, 0), ir.Constant(I32, k)])

    def vec_retain(self) -> ir.Function:
        fn, b, new = self._helper("ms.vec.retain", VOID, [VEC_PTR])
        if new:
            v, = fn.args
            go = fn.append_basic_block("counted")
            inc = fn.append_basic_block("inc")
            done = fn.append_basic_block("done")
            b.cbranch(b.icmp_unsigned("==", v, ir.Constant(VEC_PTR, None)),
                      done, go)
            b.position_at_end(go)
            rc = self.header_load(b, v, 0)
            b.cbranch(b.icmp_signed("<", rc, ir.Constant(I64, CT.IMMORTAL)),
                      inc, done)
            b.position_at_end(inc)
            self.header_store(b, b.add(rc, ir.Constant(I64, 1)), v, 0)
            b.branch(done)
            b.position_at_end(done)
            b.ret_void()
        return fn

    def vec_release(self) -> ir.Function:
        fn, b, new = self._helper("ms.vec.release", VOID, [PTR, VEC_PTR])
        if new:
            vt, v = fn.args
            go = fn.append_basic_block("counted")
            last = fn.append_basic_block("last")
            notlast = fn.append_basic_block("notlast")
            dec = fn.append_basic_block("dec")
            done = fn.append_basic_block("done")
            b.cbranch(b.icmp_unsigned("==", v, ir.Constant(VEC_PTR, None)),
                      done, go)
            b.position_at_end(go)
            rc = self.header_load(b, v, 0)
            b.cbranch(b.icmp_signed("==", rc, ir.Constant(I64, 1)),
                      last, notlast)
            b.position_at_end(last)
            b.call(self.rt.fn("ms_vec_release"), [vt, v])
            b.branch(done)
            b.position_at_end(notlast)
            b.cbranch(b.icmp_signed("<", rc, ir.Constant(I64, CT.IMMORTAL)),
                      dec, done)
            b.position_at_end(dec)
            self.header_store(b, b.sub(rc, ir.Constant(I64, 1)), v, 0)
            b.branch(done)
            b.position_at_end(done)
            b.ret_void()
        return fn

    def vec_unique(self) -> ir.Function:
        fn, b, new = self._helper("ms.vec.unique", VEC_PTR,
                                  [PTR, VEC_PTR.as_pointer()])
        if new:
            vt, vp = fn.args
            tmp = b.alloca(VEC_PTR)   # in the entry block: a static slot
            go = fn.append_basic_block("nonnull")
            shared = fn.append_basic_block("shared")
            done = fn.append_basic_block("done")
            v = b.load(vp)
            b.cbranch(b.icmp_unsigned("==", v, ir.Constant(VEC_PTR, None)),
                      done, go)
            b.position_at_end(go)
            rc = self.header_load(b, v, 0)
            b.cbranch(b.icmp_signed("==", rc, ir.Constant(I64, 1)),
                      done, shared)
            b.position_at_end(shared)
            copied = self._through_temp(b, "ms_vec_unique", vt, v, vp, tmp)
            b.branch(done)
            b.position_at_end(done)
            phi = b.phi(VEC_PTR)
            phi.add_incoming(v, fn.entry_basic_block)
            phi.add_incoming(v, go)
            phi.add_incoming(copied, shared)
            b.ret(phi)
        return fn

    def vec_push(self) -> ir.Function:
        """ms.vec.push(vt, vp, esz): the address of a new last element (its
        bytes not yet set): in place when the vector is unique and has
        room, else through ms_vec_push."""
        fn, b, new = self._helper("ms.vec.push", PTR,
                                  [PTR, VEC_PTR.as_pointer(), I64])
        if new:
            vt, vp, esz = fn.args
            tmp = b.alloca(VEC_PTR)   # in the entry block: a static slot
            go = fn.append_basic_block("nonnull")
            unique = fn.append_basic_block("unique")
            fast = fn.append_basic_block("fast")
            slow = fn.append_basic_block("slow")
            v = b.load(vp)
            b.cbranch(b.icmp_unsigned("==", v, ir.Constant(VEC_PTR, None)),
                      slow, go)
            b.position_at_end(go)
            rc = self.header_load(b, v, 0)
            b.cbranch(b.icmp_signed("==", rc, ir.Constant(I64, 1)),
                      unique, slow)
            b.position_at_end(unique)
            n = self.header_load(b, v, 1)
            cap = self.header_load(b, v, 2)
            b.cbranch(b.icmp_signed("<", n, cap), fast, slow)
            b.position_at_end(fast)
            self.header_store(b, b.add(n, ir.Constant(I64, 1)), v, 1)
            data = b.gep(b.bitcast(v, PTR), [ir.Constant(I64, CT.VEC_HEADER)])
            b.ret(b.gep(data, [b.mul(n, esz)]))
            b.position_at_end(slow)
            b.ret(self._through_temp(b, "ms_vec_push", vt, v, vp, tmp))
        return fn

    def vec_append_all(self) -> ir.Function:
        """ms.vec.append(vt, vp, b): *vp += b (ms_vec_append_all)."""
        fn, b, new = self._helper("ms.vec.append", VOID,
                                  [PTR, VEC_PTR.as_pointer(), VEC_PTR])
        if new:
            vt, vp, other = fn.args
            tmp = b.alloca(VEC_PTR)
            b.store(b.load(vp), tmp)
            b.call(self.rt.fn("ms_vec_append_all"), [vt, tmp, other])
            b.store(b.load(tmp), vp)
            b.ret_void()
        return fn

    def _through_temp(self, b, runtime_fn, vt, v, vp, tmp) -> ir.Value:
        """Call runtime_fn(vt, &tmp) with tmp = v, then *vp = tmp: the
        runtime never sees the address of the place itself, so a local
        variable's slot does not escape and LLVM keeps it in a register.
        `tmp` is a slot allocated in the helper's entry block (a static
        alloca, which inlining moves to the caller's entry)."""
        b.store(v, tmp)
        r = b.call(self.rt.fn(runtime_fn), [vt, tmp])
        b.store(b.load(tmp), vp)
        return r

    # ------------------------------------------------------------ values

    def retain(self, b: ir.IRBuilder, value: ir.Value, t: T.Type) -> None:
        """One more reference to everything `value` (of type t) refers to."""
        if isinstance(t, (T.VectorType, T.MapType)):
            b.call(self.vec_retain(), [value])
        elif isinstance(t, T.JobType):
            b.call(self.rt.fn("ms_handle_retain"), [value])
        elif isinstance(t, T.StructType) and self.types.has_refs(t):
            b.call(self._struct_helper("retain", t), [value])

    def release(self, b: ir.IRBuilder, value: ir.Value, t: T.Type) -> None:
        """Drop the references `value` (of type t) holds."""
        if isinstance(t, (T.VectorType, T.MapType)):
            b.call(self.vec_release(), [self.descriptor(t), value])
        elif isinstance(t, T.JobType):
            b.call(self.rt.fn("ms_handle_release"), [value])
        elif isinstance(t, T.StructType) and self.types.has_refs(t):
            b.call(self._struct_helper("release", t), [value])

    def _struct_helper(self, what: str, t: T.StructType) -> ir.Function:
        fn, hb, new = self._helper(f"ms.{what}.{t.name}", VOID,
                                   [self.types.mem_type(t)])
        if new:
            value, = fn.args
            for k, (_, ft) in enumerate(self.types.structs[t.name]):
                if self.types.has_refs(ft):
                    field = hb.extract_value(value, k)
                    getattr(self, what)(hb, field, ft)
            hb.ret_void()
        return fn


__all__ = ["Values", "I1"]
