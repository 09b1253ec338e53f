"""codegen: lowered IR (compiler/ir/lowered.py) -> an llvmlite ir.Module.

The module defines what ms_abi.h part A asks of compiled code:
- `void ms_master_main(void)`: the master block (`return;` returns);
- every function and job, with internal linkage under the name
  `ms.fn.NAME` (a dot cannot occur in a C identifier, so user names such as
  `main`, `exit` or `ms_start_job` never clash with C symbols);
- for each job k a wrapper `ms.jobrun.NAME(ms_reader *args, ms_buf *out)`
  that decodes the arguments, calls the job and encodes its result, and
  the constant table `ms_job_table` ({name, arg_sig, ret_sig, run}, entry
  k-1 for ordinal k), `ms_job_count`, `ms_program_source` (the source
  path as given to msc, which runtime errors print) and
  `ms_compiler_version` (which `--version` prints).

Semantics follow SPEC sections 3, 5, 6 and 11 (see
compiler/codegen/functions.py for the details: wrapping integer
arithmetic, checked division, IEEE doubles, short-circuit logic,
left-to-right evaluation, stack-overflow checks before calls that may
recurse). Vectors, strings and structs follow
the refcounted IR of compiler/ir/vectors.py (compiled by
compiler/codegen/vectors.py); type descriptors, string literals and the
inlined refcount helpers are in compiler/codegen/values.py; the
type-directed parts (LLVM types, layout, zero values, signatures) in
compiler/codegen/llvm_types.py.

Job wrappers decode each argument (ms_value_decode for vectors and
structs, which makes fresh values with refcount 1), call the job with them
(handing over those the job takes owned, its owned-param parameters, so
that a job writing its argument does so in place), encode the result, then
release the other decoded arguments and the result. Values of struct type are passed and returned as LLVM aggregates.

The module text is deterministic: declarations in source order, runtime
functions and strings in order of first use; the target triple and data
layout are left to the backend, so the text does not depend on the host.
"""
from __future__ import annotations

import attrs
from llvmlite import ir

from compiler.version import compiler_version
from compiler.codegen import llvm_types as CT
from compiler.codegen.functions import FunctionEmitter
from compiler.codegen.runtime_abi import Runtime
from compiler.codegen.values import Values
from compiler.errors import CompileError, Pos
from compiler.ir import lowered as L
from compiler.ir.callgraph import recursive_pairs
from compiler.ir import types as T
from compiler.ir.surface import FuncDecl, MasterDecl, Program
from compiler.ir.walk import walk
from compiler.ir.vectors import owned_params, struct_table

_RUN_TYPE = ir.FunctionType(CT.VOID, [CT.READER_PTR, CT.PTR])
_ENTRY_TYPE = ir.LiteralStructType([CT.PTR, CT.PTR, CT.PTR,
                                    _RUN_TYPE.as_pointer()])
# Twins. A small function that calls itself is emitted twice, as ms.fn.NAME
# and ms.fn.NAME.twin, each calling the other where the source calls NAME:
# LLVM's inliner, which never inlines a function into itself, then inlines
# the twin into NAME, one level of recursion unrolled (what gcc -O2 does for
# self-recursion), and drops the twin. Every call left is a real call with
# its stack check (SPEC section 11's stack overflow is unchanged; only a
# frame is bigger). Bodies of at most this many IR nodes are twinned.
TWIN_MAX_NODES = 120
TWIN_COPIES = 2


@attrs.define
class _Module:
    """Module-level state shared by the function emitters."""
    module: ir.Module
    rt: Runtime
    types: CT.Types
    values: Values
    functions: dict        # name -> (ir.Function, FuncDecl), source order
    recursive: set         # (caller, callee) pairs that may recurse
    # Functions on a cycle of calls: they take the thread's stack limit as
    # a last, hidden i64 parameter, so that their stack checks need no
    # runtime call (callers outside the cycle load it once at entry).
    takes_limit: set = attrs.field(factory=set)
    # Functions on a cycle of calls that poll for cancellation (those jobs
    # reach): they take the address of the thread's cancel flag as a hidden
    # parameter after the limit, so that a call costs no runtime call.
    takes_flag: set = attrs.field(factory=set)
    # name -> the twin of a small self-recursive function (_twins).
    twins: dict = attrs.field(factory=dict)


def _source_path(prog: Program) -> str:
    pos = getattr(prog, "pos", None)
    if isinstance(pos, Pos):
        return pos.file
    for d in prog.decls:
        if isinstance(getattr(d, "pos", None), Pos):
            return d.pos.file
    return ""


def _constant_string(module: ir.Module, name: str, text: str,
                     linkage: str = "private") -> ir.GlobalVariable:
    data = bytearray(text.encode("utf-8") + b"\0")
    ty = ir.ArrayType(CT.I8, len(data))
    g = ir.GlobalVariable(module, ty, name=name)
    if linkage:
        g.linkage = linkage
    g.global_constant = True
    if linkage == "private":
        g.unnamed_addr = True
    g.initializer = ir.Constant(ty, data)
    return g


def run(prog: Program) -> ir.Module:
    source = _source_path(prog)
    module = ir.Module(name=source)
    funcs = {d.name: d for d in prog.decls if isinstance(d, FuncDecl)}
    masters = [d for d in prog.decls if isinstance(d, MasterDecl)]
    if len(masters) != 1:
        raise CompileError(Pos(source, 1, 1),
                           "a program needs exactly one master block")
    rt = Runtime(module)
    types = CT.Types(struct_table(prog))
    mod = _Module(module=module, rt=rt, types=types,
                  values=Values(module, rt, types), functions={},
                  recursive=recursive_pairs(funcs))
    mod.takes_limit = {a for a, _ in mod.recursive}
    mod.takes_flag = {name for name in mod.takes_limit
                      if any(isinstance(n, L.CancelCheck)
                             for n in walk(funcs[name].body))}

    # Declare every function first: calls may precede declarations.
    for name, decl in funcs.items():
        params = [types.llvm_type(p.type) for p in decl.params]
        if name in mod.takes_limit:
            params.append(CT.I64)
        if name in mod.takes_flag:
            params.append(CT.I32.as_pointer())
        fnty = ir.FunctionType(types.llvm_type(decl.ret), params)
        fn = ir.Function(module, fnty, name=f"ms.fn.{name}")
        fn.linkage = "internal"
        mod.functions[name] = (fn, decl)

    for name, (fn, decl) in mod.functions.items():
        if (name, name) in mod.recursive and \
                sum(1 for _ in walk(decl.body)) <= TWIN_MAX_NODES:
            chain = []
            for k in range(1, TWIN_COPIES + 1):
                twin = ir.Function(module, fn.function_type,
                                   name=f"ms.fn.{name}.twin{k}")
                twin.linkage = "internal"
                chain.append(twin)
            mod.twins[name] = chain

    for name, (fn, decl) in mod.functions.items():
        chain = [fn] + mod.twins.get(name, [])
        for k, target in enumerate(chain):
            em = FunctionEmitter(mod, target, name,
                                 self_call=chain[(k + 1) % len(chain)])
            em.bind_params(decl.params, target.args)
            em.block(decl.body)
            em.finish(decl.ret)

    master = ir.Function(module, ir.FunctionType(CT.VOID, []),
                         name="ms_master_main")
    em = FunctionEmitter(mod, master, None)
    em.block(masters[0].body)
    em.finish(T.VOID)

    for fn in list(module.functions):
        mod.values.keep_helper_calls(fn)
    _emit_job_table(mod, [d for d in funcs.values() if d.is_job], prog)
    _constant_string(module, "ms_program_source", source, linkage="")
    _constant_string(module, "ms_compiler_version", compiler_version(),
                     linkage="")
    return module


def _emit_job_wrapper(mod: _Module, decl: FuncDecl) -> ir.Function:
    """void ms.jobrun.NAME(ms_reader *args, ms_buf *result)."""
    fn = ir.Function(mod.module, _RUN_TYPE, name=f"ms.jobrun.{decl.name}")
    fn.linkage = "internal"
    reader, out = fn.args
    em = FunctionEmitter(mod, fn, None)
    args = [em.decode(reader, p.type) for p in decl.params]
    hidden = [em.stack_limit()] if decl.name in mod.takes_limit else []
    if decl.name in mod.takes_flag:
        hidden.append(em.cancel_flag())
    result = em.b.call(mod.functions[decl.name][0], args + hidden)
    if decl.ret != T.VOID:
        em.encode(out, result, decl.ret)
        mod.values.release(em.b, result, decl.ret)
    owned = owned_params(decl)          # the job releases those itself
    for value, p in zip(args, decl.params):
        if p.name not in owned:
            mod.values.release(em.b, value, p.type)
    em.b.ret_void()
    em.finish(T.VOID)
    return fn


def _emit_job_table(mod: _Module, jobs: list, prog: Program) -> None:
    module = mod.module
    entries = []
    for k, decl in enumerate(jobs, start=1):
        run_fn = _emit_job_wrapper(mod, decl)
        arg_sig = "".join(mod.types.signature(p.type) for p in decl.params)
        ret_sig = mod.types.signature(decl.ret)
        strings = [_constant_string(module, f"ms.job.{k}.{what}", text)
                   for what, text in (("name", decl.name), ("args", arg_sig),
                                      ("ret", ret_sig))]
        entries.append(ir.Constant(_ENTRY_TYPE, [
            s.gep([ir.Constant(CT.I32, 0), ir.Constant(CT.I32, 0)])
            for s in strings] + [run_fn]))
    table_ty = ir.ArrayType(_ENTRY_TYPE, len(entries))
    table = ir.GlobalVariable(module, table_ty, name="ms_job_table")
    table.global_constant = True
    table.initializer = ir.Constant(table_ty, entries)
    count = ir.GlobalVariable(module, CT.I32, name="ms_job_count")
    count.global_constant = True
    count.initializer = ir.Constant(CT.I32, len(entries))
