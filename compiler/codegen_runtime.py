"""Module-level resources for codegen: declarations of the runtime's
functions (ms_abi.h part B), LLVM intrinsics and libm functions, and
private constant strings.

Everything is declared on first use, so the module text lists only what the
program needs, in the (deterministic) order codegen first needed it.
"""
from __future__ import annotations

from llvmlite import ir

from compiler.codegen_types import (DOUBLE, I8, I32, I64, PTR, READER_PTR,
                                    VOID)

# name -> (return type, parameter types); ms_abi.h part B and what we use of
# libm and the LLVM intrinsics.
_SIGNATURES = {
    "ms_runtime_error": (VOID, (I32, I32, PTR)),
    "ms_stack_limit_ptr": (I64.as_pointer(), ()),
    "ms_print_int": (VOID, (I64,)),
    "ms_print_double": (VOID, (DOUBLE,)),
    "ms_print_bool": (VOID, (I8,)),
    "ms_print_char": (VOID, (I8,)),
    "ms_print_jobstate": (VOID, (I32,)),
    "ms_buf_put_i64": (VOID, (PTR, I64)),
    "ms_buf_put_f64": (VOID, (PTR, DOUBLE)),
    "ms_buf_put_u8": (VOID, (PTR, I8)),
    "ms_buf_put_u32": (VOID, (PTR, I32)),
    "ms_read_i64": (I64, (READER_PTR,)),
    "ms_read_f64": (DOUBLE, (READER_PTR,)),
    "ms_read_u8": (I8, (READER_PTR,)),
    "ms_read_u32": (I32, (READER_PTR,)),
    "ms_args_new": (PTR, ()),
    "ms_start_job": (PTR, (I32, PTR)),
    "ms_reap_job": (VOID, (PTR, READER_PTR, I32, I32)),
    "ms_job_state": (I32, (PTR, I32, I32)),
    "ms_job_cancel": (VOID, (PTR, I32, I32)),
    "ms_handle_retain": (VOID, (PTR,)),
    "ms_handle_release": (VOID, (PTR,)),
    # libm, called so that results are exactly C's (SPEC section 6).
    "exp": (DOUBLE, (DOUBLE,)),
    "log": (DOUBLE, (DOUBLE,)),
    "sin": (DOUBLE, (DOUBLE,)),
    "cos": (DOUBLE, (DOUBLE,)),
    "tan": (DOUBLE, (DOUBLE,)),
    "atan2": (DOUBLE, (DOUBLE, DOUBLE)),
    "pow": (DOUBLE, (DOUBLE, DOUBLE)),
    # LLVM intrinsics.
    "llvm.sqrt.f64": (DOUBLE, (DOUBLE,)),
    "llvm.floor.f64": (DOUBLE, (DOUBLE,)),
    "llvm.ceil.f64": (DOUBLE, (DOUBLE,)),
    "llvm.fabs.f64": (DOUBLE, (DOUBLE,)),
    "llvm.minnum.f64": (DOUBLE, (DOUBLE, DOUBLE)),
    "llvm.maxnum.f64": (DOUBLE, (DOUBLE, DOUBLE)),
    "llvm.fptosi.sat.i64.f64": (I64, (DOUBLE,)),
    "llvm.frameaddress.p0": (PTR, (I32,)),
}

_ATTRIBUTES = {
    "ms_runtime_error": ("noreturn", "cold", "nounwind"),
    # The limit's address is fixed for the thread, so LLVM may reuse it.
    "ms_stack_limit_ptr": ("readnone", "nounwind"),
}


class Runtime:
    """Lazily declared external functions and interned constant strings of
    one module."""

    def __init__(self, module: ir.Module):
        self.module = module
        self._fns: dict[str, ir.Function] = {}
        self._strings: dict[bytes, ir.GlobalVariable] = {}

    def fn(self, name: str) -> ir.Function:
        f = self._fns.get(name)
        if f is None:
            ret, params = _SIGNATURES[name]
            f = ir.Function(self.module, ir.FunctionType(ret, params), name)
            for attr in _ATTRIBUTES.get(name, ()):
                f.attributes.add(attr)
            self._fns[name] = f
        return f

    def cstring(self, b: ir.IRBuilder, text: str) -> ir.Value:
        """An i8* to a private NUL-terminated constant holding `text`."""
        data = text.encode("utf-8") + b"\0"
        g = self._strings.get(data)
        if g is None:
            ty = ir.ArrayType(I8, len(data))
            g = ir.GlobalVariable(self.module, ty,
                                  name=f"ms.str.{len(self._strings)}")
            g.linkage = "private"
            g.global_constant = True
            g.unnamed_addr = True
            g.initializer = ir.Constant(ty, bytearray(data))
            self._strings[data] = g
        return b.bitcast(g, PTR)
