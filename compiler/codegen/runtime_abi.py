"""Module-level resources for codegen: declarations of the runtime's
functions (ms_abi.h part B), LLVM intrinsics and libm functions, and
private constant strings.

Everything is declared on first use, so the module text lists only what the
program needs, in the (deterministic) order codegen first needed it.
"""
from __future__ import annotations

from llvmlite import ir

from compiler.codegen.llvm_types import (DOUBLE, I8, I32, I64, PTR,
                                         READER_PTR, VEC_PTR, VOID)

# name -> (return type, parameter types); ms_abi.h part B and what we use of
# libm and the LLVM intrinsics.
_SIGNATURES = {
    "ms_runtime_error": (VOID, (I32, I32, PTR)),
    "ms_stack_limit_ptr": (I64.as_pointer(), ()),
    "ms_cancel_flag_ptr": (I32.as_pointer(), ()),
    "ms_cancel_point": (VOID, ()),
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
    # Controlling jobs (SPEC 12.5).
    "ms_wait_any": (I64, (VEC_PTR, DOUBLE)),
    "ms_wait_job": (I8, (PTR, DOUBLE, I32, I32)),
    "ms_job_error": (VEC_PTR, (PTR, I32, I32)),
    "ms_fail": (VOID, (VEC_PTR, I32, I32)),
    "ms_slaves": (I64, ()),
    "ms_clock": (DOUBLE, ()),
    "ms_sleep": (VOID, (DOUBLE,)),
    # Values: vectors, strings, structs (ms_abi.h part C).
    "ms_vec_new": (VEC_PTR, (PTR, I64)),
    "ms_value_retain": (VOID, (PTR, PTR)),
    "ms_value_release": (VOID, (PTR, PTR)),
    "ms_vec_release": (VOID, (PTR, VEC_PTR)),
    "ms_vec_unique": (VEC_PTR, (PTR, VEC_PTR.as_pointer())),
    "ms_vec_push": (PTR, (PTR, VEC_PTR.as_pointer())),
    "ms_vec_concat": (VEC_PTR, (PTR, VEC_PTR, VEC_PTR)),
    "ms_vec_append_all": (VOID, (PTR, VEC_PTR.as_pointer(), VEC_PTR)),
    "ms_value_eq": (I8, (PTR, PTR, PTR)),
    "ms_string_cmp": (I32, (VEC_PTR, VEC_PTR)),
    "ms_index_error": (VOID, (I64, I64, I32, I32)),
    "ms_shift_error": (VOID, (I64, I32, I32)),
    "ms_str_int": (VEC_PTR, (I64,)),
    "ms_str_double": (VEC_PTR, (DOUBLE,)),
    "ms_str_bool": (VEC_PTR, (I8,)),
    "ms_str_char": (VEC_PTR, (I8,)),
    "ms_str_jobstate": (VEC_PTR, (I32,)),
    "ms_print_string": (VOID, (VEC_PTR,)),
    "ms_value_encode": (VOID, (PTR, PTR, PTR)),
    "ms_value_decode": (VOID, (PTR, READER_PTR, PTR)),
    # Text, numbers and vectors (ms_abi.h part E, SPEC 12.3).
    "ms_string_to_int": (I64, (VEC_PTR, I32, I32)),
    "ms_string_to_double": (DOUBLE, (VEC_PTR, I32, I32)),
    "ms_split": (VEC_PTR, (VEC_PTR, VEC_PTR, I32, I32)),
    "ms_join": (VEC_PTR, (VEC_PTR, VEC_PTR)),
    "ms_vec_find": (I64, (PTR, VEC_PTR, PTR)),
    "ms_vec_find_run": (I64, (PTR, VEC_PTR, VEC_PTR)),
    "ms_vec_slice": (VEC_PTR, (PTR, VEC_PTR, I64, I64, I32, I32)),
    "ms_vec_sort": (VEC_PTR, (PTR, VEC_PTR)),
    "ms_vec_repeat": (VEC_PTR, (PTR, PTR, I64, I32, I32)),
    # SPEC 12.1, 12.2: arguments, files and standard streams.
    "ms_args": (VEC_PTR, ()),
    "ms_read_file": (VEC_PTR, (VEC_PTR, I32, I32)),
    "ms_write_file": (VOID, (VEC_PTR, VEC_PTR, I32, I32)),
    "ms_list_dir": (VEC_PTR, (VEC_PTR, I32, I32)),
    "ms_read_stdin": (VEC_PTR, (I32, I32)),
    "ms_eprint_int": (VOID, (I64,)),
    "ms_eprint_double": (VOID, (DOUBLE,)),
    "ms_eprint_bool": (VOID, (I8,)),
    "ms_eprint_char": (VOID, (I8,)),
    "ms_eprint_jobstate": (VOID, (I32,)),
    "ms_eprint_string": (VOID, (VEC_PTR,)),
    # Maps (ms_abi.h part F, SPEC 13).
    "ms_map_get": (PTR, (PTR, VEC_PTR, PTR, I32, I32)),
    "ms_map_insert": (PTR, (PTR, VEC_PTR.as_pointer(), PTR)),
    "ms_map_has": (I8, (PTR, VEC_PTR, PTR)),
    "ms_map_remove": (VOID, (PTR, VEC_PTR.as_pointer(), PTR)),
    "ms_map_keys": (VEC_PTR, (PTR, VEC_PTR)),
    "ms_map_values": (VEC_PTR, (PTR, VEC_PTR)),
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
    "ms_index_error": ("noreturn", "cold", "nounwind"),
    "ms_shift_error": ("noreturn", "cold", "nounwind"),
    "ms_fail": ("noreturn", "cold", "nounwind"),
    # The flag's address is fixed for the thread too.
    "ms_cancel_flag_ptr": ("readnone", "nounwind"),
    # Abandons a cancelled job (a longjmp out of job code) and otherwise
    # returns having touched no memory the program can see, so loads and
    # stores around a check may still be moved across it.
    "ms_cancel_point": ("cold", "nounwind", "inaccessiblememonly"),
    # Pure reads of their operands (they may raise "stack overflow", which
    # does not return).
    "ms_string_cmp": ("readonly", "nounwind"),
    "ms_value_eq": ("readonly", "nounwind"),
    "ms_vec_find": ("readonly", "nounwind"),
    "ms_map_has": ("readonly", "nounwind"),
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
        return b.bitcast(self._cstring_global(text), PTR)

    def cstring_const(self, text: str) -> ir.Constant:
        """The same as a constant expression (for initializers)."""
        return self._cstring_global(text).bitcast(PTR)

    def _cstring_global(self, text: str) -> ir.GlobalVariable:
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
        return g
