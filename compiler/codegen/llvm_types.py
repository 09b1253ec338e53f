"""How codegen represents each M/s type: LLVM types, memory layout, zero
values, wire encoding and decoding of scalars, and the type signatures of
ms_abi.h.

Representation (SPEC sections 3 and 6, ms_abi.h part C):
  int i64, double double, char i8 (unsigned), jobstate i32 (running=0
  finished=1 failed=2 cancelled=3), job<T> an opaque pointer (null = unset
  handle), vector<T> and string a pointer to an ms_vec (null = the empty
  vector), map<K, V> a pointer to a map header that begins like an
  ms_vec (null = the empty map; ms_abi.h part F), struct S an LLVM literal struct of its fields' memory types.
  bool is i1 in registers and in local variables, but i8 (0 or 1) in
  memory that the runtime also reads: vector elements, struct fields, the
  ABI and the wire. So a struct value (even in a register) holds its bool
  fields as i8, and loads and stores of a bool element or field convert.

Layout: a struct's fields lie at C struct layout (natural alignment, size
rounded up to the struct's alignment; an empty struct has size 0), which is
also LLVM's layout of the literal struct type under the x86_64 data layout;
`layout` computes sizes, alignments and offsets for the ms_type
descriptors, and tests/test_codegen.py checks them against the C compiler.
"""
from __future__ import annotations

from llvmlite import ir

from compiler.ir import types as T

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
DOUBLE = ir.DoubleType()
VOID = ir.VoidType()
PTR = I8.as_pointer()            # opaque pointers: ms_buf*, ms_handle, char*
READER = ir.LiteralStructType([PTR, I64, I64])   # ms_reader {data, len, off}
READER_PTR = READER.as_pointer()
VEC = ir.LiteralStructType([I64, I64, I64])      # ms_vec {refcount, len, cap}
VEC_PTR = VEC.as_pointer()
VEC_HEADER = 24
# ms_type: {kind, size, has_refs, nfields, elem, fields, offsets, name}
TYPE_DESC = ir.LiteralStructType([I32, I32, I32, I32, PTR, PTR, PTR, PTR])
IMMORTAL = 1 << 62

# ms_type kinds.
KIND = {"int": 0, "double": 1, "bool": 2, "char": 3, "jobstate": 4,
        "job": 5, "vector": 6, "struct": 7, "map": 8}


def is_aggregate(t: T.Type) -> bool:
    """Vectors and structs: the types the runtime's value calls handle."""
    return isinstance(t, (T.VectorType, T.StructType, T.MapType))


class Types:
    """The types of one program: struct declarations (name -> tuple of
    (field name, field type)) and cached layouts."""

    def __init__(self, structs: dict):
        self.structs = structs
        self._layout: dict = {}
        self._mem: dict = {}

    # ------------------------------------------------------------ LLVM types

    def llvm_type(self, t: T.Type) -> ir.Type:
        """The LLVM type of a value of M/s type `t` in a register or local."""
        if t == T.BOOL:
            return I1
        if t == T.VOID:
            return VOID
        return self.mem_type(t)

    def mem_type(self, t: T.Type) -> ir.Type:
        """The LLVM type of a value of `t` in memory shared with the
        runtime (elements, fields); bool is i8 there."""
        if t == T.INT:
            return I64
        if t == T.DOUBLE:
            return DOUBLE
        if t in (T.BOOL, T.CHAR):
            return I8
        if t == T.JOBSTATE:
            return I32
        if isinstance(t, T.JobType):
            return PTR
        if isinstance(t, (T.VectorType, T.MapType)):
            return VEC_PTR
        if isinstance(t, T.StructType):
            ty = self._mem.get(t.name)
            if ty is None:
                ty = ir.LiteralStructType(
                    [self.mem_type(ft) for _, ft in self.structs[t.name]])
                self._mem[t.name] = ty
            return ty
        raise AssertionError(f"no LLVM representation for {t}")

    def to_mem(self, b: ir.IRBuilder, value: ir.Value, t: T.Type) -> ir.Value:
        return b.zext(value, I8) if t == T.BOOL else value

    def from_mem(self, b: ir.IRBuilder, value: ir.Value, t: T.Type) -> ir.Value:
        if t == T.BOOL:
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
        return value

    def zero_value(self, t: T.Type) -> ir.Constant:
        """The value of a variable of type `t` declared without an
        initializer (all-zero bytes for every type)."""
        lt = self.llvm_type(t)
        if t == T.DOUBLE:
            return ir.Constant(lt, 0.0)
        if isinstance(lt, (ir.PointerType, ir.LiteralStructType)):
            return ir.Constant(lt, None)
        return ir.Constant(lt, 0)

    # ------------------------------------------------------------ layout

    def layout(self, t: T.Type) -> tuple:
        """(size, alignment, field offsets) of a value of `t` in memory, as
        C lays it out."""
        key = t
        got = self._layout.get(key)
        if got is not None:
            return got
        if t in (T.INT, T.DOUBLE) or isinstance(t, (T.JobType, T.VectorType,
                                                    T.MapType)):
            got = (8, 8, ())
        elif t in (T.BOOL, T.CHAR):
            got = (1, 1, ())
        elif t == T.JOBSTATE:
            got = (4, 4, ())
        elif isinstance(t, T.StructType):
            off, align, offsets = 0, 1, []
            for _, ft in self.structs[t.name]:
                size, a, _ = self.layout(ft)
                off = (off + a - 1) // a * a
                offsets.append(off)
                off += size
                align = max(align, a)
            size = 0 if not offsets else (off + align - 1) // align * align
            got = (size, align, tuple(offsets))
        else:
            raise AssertionError(f"no layout for {t}")
        self._layout[key] = got
        return got

    def has_refs(self, t: T.Type) -> bool:
        """Whether a value holds vectors or job handles (at any depth)."""
        if isinstance(t, (T.VectorType, T.JobType, T.MapType)):
            return True
        if isinstance(t, T.StructType):
            return any(self.has_refs(ft) for _, ft in self.structs[t.name])
        return False

    def signature(self, t: T.Type) -> str:
        return signature(t, {n: tuple(ft for _, ft in fs)
                             for n, fs in self.structs.items()})


def signature(t: T.Type, struct_fields=None) -> str:
    """The ms_abi.h signature of a serializable type ("" for void).

    struct_fields maps a struct's name to its field types in declaration
    order (needed only for structs). A struct met again inside itself
    (through a vector) is the back-reference `^N`, N the number of
    characters back to its `{`."""
    out: list[str] = []
    _signature(t, struct_fields or {}, out, {}, [0])
    return "".join(out)


def _signature(t, struct_fields, out, open_at, length) -> None:
    """Append t's signature to out; open_at maps the structs being written
    to the offset of their `{`, length[0] is the length of out so far."""
    def put(s):
        out.append(s)
        length[0] += len(s)
    if t == T.VOID:
        return
    if t in (T.INT, T.DOUBLE, T.BOOL, T.CHAR):
        put({T.INT: "i", T.DOUBLE: "d", T.BOOL: "b", T.CHAR: "c"}[t])
    elif isinstance(t, T.VectorType):
        put("v")
        _signature(t.elem, struct_fields, out, open_at, length)
    elif isinstance(t, T.MapType):   # SPEC 13: `m`, the key, the value
        put("m")
        _signature(t.key, struct_fields, out, open_at, length)
        _signature(t.value, struct_fields, out, open_at, length)
    elif isinstance(t, T.StructType):
        if t.name in open_at:
            put(f"^{length[0] - open_at[t.name]}")
            return
        open_at[t.name] = length[0]
        put("{")
        for f in struct_fields[t.name]:
            _signature(f, struct_fields, out, open_at, length)
        put("}")
        del open_at[t.name]
    else:
        raise AssertionError(f"{t} is not serializable")


def encode_scalar(b: ir.IRBuilder, rt, buf: ir.Value, value: ir.Value,
                  t: T.Type) -> None:
    """Append scalar `value` (of M/s type t) to the ms_buf `buf`."""
    if t == T.INT:
        b.call(rt.fn("ms_buf_put_i64"), [buf, value])
    elif t == T.DOUBLE:
        b.call(rt.fn("ms_buf_put_f64"), [buf, value])
    elif t == T.BOOL:
        b.call(rt.fn("ms_buf_put_u8"), [buf, b.zext(value, I8)])
    elif t == T.CHAR:
        b.call(rt.fn("ms_buf_put_u8"), [buf, value])
    else:
        raise AssertionError(f"{t} is not a serializable scalar")


def decode_scalar(b: ir.IRBuilder, rt, reader: ir.Value, t: T.Type) -> ir.Value:
    """Read a scalar of M/s type t from the ms_reader `reader` (validated by
    the runtime against the signature before any decoder runs)."""
    if t == T.INT:
        return b.call(rt.fn("ms_read_i64"), [reader])
    if t == T.DOUBLE:
        return b.call(rt.fn("ms_read_f64"), [reader])
    if t == T.BOOL:
        byte = b.call(rt.fn("ms_read_u8"), [reader])
        return b.icmp_unsigned("!=", byte, ir.Constant(I8, 0))
    if t == T.CHAR:
        return b.call(rt.fn("ms_read_u8"), [reader])
    raise AssertionError(f"{t} is not a serializable scalar")
