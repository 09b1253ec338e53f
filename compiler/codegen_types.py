"""How codegen represents each M/s type: LLVM types, zero values, wire
encoding and decoding, and the type signatures of ms_abi.h.

One place per type question, so that vectors, strings and structs can be
added by extending these functions rather than rewriting the code generator.
Scalars only for now: `unsupported(t)` names what is not compiled yet, and
codegen rejects such programs with a CompileError before emitting anything.

Representation (SPEC sections 3 and 6, ms_abi.h):
  int i64, double double, bool i1 (i8 0/1 across the ABI and on the wire),
  char i8 (unsigned), jobstate i32 (running=0 finished=1 failed=2
  cancelled=3), job<T> an opaque pointer (null = unset handle).
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


def unsupported(t: T.Type) -> str | None:
    """The name of the part of `t` codegen cannot compile yet, or None."""
    if isinstance(t, T.VectorType):
        return "strings" if t.elem == T.CHAR else "vectors"
    if isinstance(t, T.StringType):
        return "strings"
    if isinstance(t, T.StructType):
        return "structs"
    if isinstance(t, T.JobType):
        return unsupported(t.result)
    return None


def llvm_type(t: T.Type) -> ir.Type:
    """The LLVM type of a value of M/s type `t` inside compiled code."""
    if t == T.INT:
        return I64
    if t == T.DOUBLE:
        return DOUBLE
    if t == T.BOOL:
        return I1
    if t == T.CHAR:
        return I8
    if t == T.JOBSTATE:
        return I32
    if t == T.VOID:
        return VOID
    if isinstance(t, T.JobType):
        return PTR
    raise NotImplementedError(f"no LLVM representation for {t}")


def zero_value(t: T.Type) -> ir.Constant:
    """The value of a variable of type `t` declared without an initializer."""
    lt = llvm_type(t)
    if isinstance(t, T.JobType):
        return ir.Constant(lt, None)       # null: the unset handle
    if t == T.DOUBLE:
        return ir.Constant(lt, 0.0)
    return ir.Constant(lt, 0)              # 0, false, '\0', running


def signature(t: T.Type, struct_fields=None) -> str:
    """The ms_abi.h signature of a serializable type ("" for void).

    struct_fields maps a struct's name to its field types in declaration
    order (needed only for structs)."""
    if t == T.VOID:
        return ""
    if t == T.INT:
        return "i"
    if t == T.DOUBLE:
        return "d"
    if t == T.BOOL:
        return "b"
    if t == T.CHAR:
        return "c"
    if isinstance(t, T.VectorType):
        return "v" + signature(t.elem, struct_fields)
    if isinstance(t, T.StructType):
        fields = (struct_fields or {})[t.name]
        return "{" + "".join(signature(f, struct_fields) for f in fields) + "}"
    raise NotImplementedError(f"{t} is not serializable")


def encode(b: ir.IRBuilder, rt, buf: ir.Value, value: ir.Value,
           t: T.Type) -> None:
    """Append `value` (of M/s type t) to the ms_buf `buf` in wire format."""
    if t == T.INT:
        b.call(rt.fn("ms_buf_put_i64"), [buf, value])
    elif t == T.DOUBLE:
        b.call(rt.fn("ms_buf_put_f64"), [buf, value])
    elif t == T.BOOL:
        b.call(rt.fn("ms_buf_put_u8"), [buf, b.zext(value, I8)])
    elif t == T.CHAR:
        b.call(rt.fn("ms_buf_put_u8"), [buf, value])
    else:
        raise NotImplementedError(f"cannot encode {t} yet")


def decode(b: ir.IRBuilder, rt, reader: ir.Value, t: T.Type) -> ir.Value:
    """Read a value of M/s type t from the ms_reader `reader` (validated by
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
    raise NotImplementedError(f"cannot decode {t} yet")
