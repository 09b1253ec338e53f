"""Whole-function and whole-program rules of typecheck that are not typing:

- reachability of a function's end (SPEC sections 4 and 11, "missing return");
- serializability of job signatures (SPEC section 3);
- no `remote` (SPEC section 5) and no call of a master-only builtin
  (compiler/builtins.py) in a job or in a function a job can reach.

All functions here read typed or surface IR and return answers; they never
build IR.
"""
from __future__ import annotations

from collections import deque

from compiler import builtins as B
from compiler.errors import CompileError
from compiler.ir import types as T
from compiler.ir.surface import (Block, Break, Call, Continue, ExprStmt, For,
                                 FuncDecl, If, Remote, Return, While, BoolLit)
from compiler.ir.walk import walk


# ------------------------------------------------------------ reachability

def _has_break_leaving(stmt) -> bool:
    """Whether `stmt` (a loop body) contains a `break` that leaves the loop
    around it: one not nested inside an inner loop. Syntactic: a break counts
    even where it cannot be reached."""
    if isinstance(stmt, Break):
        return True
    if isinstance(stmt, (While, For)):
        return False
    if isinstance(stmt, Block):
        return any(_has_break_leaving(s) for s in stmt.stmts)
    if isinstance(stmt, If):
        return _has_break_leaving(stmt.then) or (
            stmt.else_ is not None and _has_break_leaving(stmt.else_))
    return False


def _ends_path(e) -> bool:
    """A call of a builtin that never returns. Builtin names cannot be
    declared (SPEC 1), so a call by that name is the builtin's."""
    if not isinstance(e, Call):
        return False
    b = B.TABLE.get(e.name)
    return b is not None and b.ends_path


def can_complete(stmt) -> bool:
    """Whether control can reach the end of `stmt` (fall through it).

    Exactly SPEC's rules: `return`, `break` and `continue` never fall
    through, nor does a call of a builtin that ends its path (`fail`,
    SPEC 12.5: compiler/builtins.py `ends_path`) as a statement; a block falls through when each of its statements does; an
    `if` falls through unless it has an `else` and neither branch falls
    through; `while (true)` (the literal `true`) and a `for` without a
    condition fall through only when a `break` leaves them; every other
    loop and statement falls through. Conditions are not evaluated:
    `while (!false)` and `if (true) return 1;` fall through.
    """
    if isinstance(stmt, (Return, Break, Continue)):
        return False
    if isinstance(stmt, ExprStmt):
        return not _ends_path(stmt.expr)
    if isinstance(stmt, Block):
        return all(can_complete(s) for s in stmt.stmts)
    if isinstance(stmt, If):
        if stmt.else_ is None:
            return True
        return can_complete(stmt.then) or can_complete(stmt.else_)
    if isinstance(stmt, While):
        if isinstance(stmt.cond, BoolLit) and stmt.cond.value is True:
            return _has_break_leaving(stmt.body)
        return True
    if isinstance(stmt, For):
        if stmt.cond is None:
            return _has_break_leaving(stmt.body)
        return True
    return True


# ------------------------------------------------------------ serializability

def not_serializable_reason(t: T.Type, structs: dict) -> str | None:
    """None if `t` is serializable (SPEC section 3), else why not, naming
    the chain of fields down to the innermost offending type.

    A struct may hold itself through a vector (directly or through other
    structs): a struct already being looked at is assumed serializable,
    since its own fields are being checked further up the walk. Each
    struct is looked at once per call, so the walk is linear in the size
    of the declarations. A map is looked through to its values (SPEC 13).
    """
    verdicts: dict[str, str | None] = {}

    def reason(t: T.Type) -> str | None:
        while isinstance(t, (T.VectorType, T.MapType)):
            # SPEC 13: a map is serializable when K and V are; K is a scalar
            t = t.elem if isinstance(t, T.VectorType) else t.value
        if t in T.SCALARS:
            return None
        if not isinstance(t, T.StructType):
            return f"{t} is not serializable"
        if t.name in verdicts:
            return verdicts[t.name]
        verdicts[t.name] = None  # in progress: a cycle back here is fine
        for fd in structs[t.name].fields:
            inner = reason(fd.type)
            if inner is not None:
                verdicts[t.name] = (f"field '{fd.name}' of struct {t.name} "
                                    f"has type {fd.type}; {inner}")
                break
        return verdicts[t.name]

    return reason(t)


def check_job_signature(fn: FuncDecl, structs: dict) -> None:
    """Job parameters and results must be serializable (or void results)."""
    for p in fn.params:
        why = not_serializable_reason(p.type, structs)
        if why is not None:
            raise CompileError(p.pos, f"parameter '{p.name}' of job '{fn.name}' "
                                      f"cannot be sent to a slave: {why}")
    if fn.ret != T.VOID:
        why = not_serializable_reason(fn.ret, structs)
        if why is not None:
            raise CompileError(fn.pos, f"the result of job '{fn.name}' cannot be "
                                       f"sent back from a slave: {why}")


# ------------------------------------------------------------ master-only code in jobs

def _calls_and_master_only(fn: FuncDecl, functions: dict, builtins: dict):
    """The user functions `fn` calls (in source order, each once) and the
    first master-only node in its body (a `remote`, or a call of a builtin
    whose `where` is MASTER_ONLY), if any."""
    callees, first = [], None
    for n in walk(fn.body):
        if isinstance(n, Call) and n.name in functions:
            if n.name not in callees:
                callees.append(n.name)
        elif first is None and (isinstance(n, Remote) or (
                isinstance(n, Call)
                and builtins[n.name].where == B.MASTER_ONLY)):
            first = n
    return callees, first


def _master_only_error(n, job: str, chain: list) -> CompileError:
    if isinstance(n, Remote):
        if len(chain) == 1:
            return CompileError(n.pos, f"remote call in job '{job}': "
                                       "a job cannot start other jobs")
        return CompileError(n.pos, f"remote call in '{chain[-1]}', which job "
                                   f"'{job}' can reach ({' -> '.join(chain)})")
    if len(chain) == 1:
        return CompileError(n.pos, f"'{n.name}' runs only in the master, "
                                   f"not in job '{job}'")
    return CompileError(n.pos, f"'{n.name}' runs only in the master, not in "
                               f"'{chain[-1]}', which job '{job}' can reach "
                               f"({' -> '.join(chain)})")


def check_master_only_in_jobs(funcs: list, functions: dict,
                              builtins: dict) -> None:
    """For each job in source order, search the functions it can reach
    (breadth first, so the chain named is a shortest one) for a `remote` or
    a call of a master-only builtin of `builtins`."""
    graph = {f.name: _calls_and_master_only(f, functions, builtins)
             for f in funcs}
    for job in funcs:
        if not job.is_job:
            continue
        parent = {job.name: None}
        queue = deque([job.name])
        while queue:
            name = queue.popleft()
            callees, found = graph[name]
            if found is not None:
                chain = []
                at = name
                while at is not None:
                    chain.append(at)
                    at = parent[at]
                chain.reverse()
                raise _master_only_error(found, job.name, chain)
            for callee in callees:
                if callee not in parent:
                    parent[callee] = name
                    queue.append(callee)
