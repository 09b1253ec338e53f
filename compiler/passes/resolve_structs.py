"""resolve-structs: surface IR without strings -> the same IR, checked.

Input: the surface IR after desugar-strings (no StringType, no StringLit).
Output: the same Program, unchanged; this pass only rejects bad programs.

It checks the struct declarations and every type written in the program:

- struct names are unique, and field names are unique within a struct;
- every `struct X` written anywhere (field, parameter, return type, local
  variable, nested in vector<...>, map<...> or job<...>) names a declared struct;
- `void` is written only as a return type or as job<void> (never as the
  type of a variable, parameter or field, nor as a vector's elements);
- a map's key type is int, char, bool or string (SPEC 13);
- no struct contains itself by value, directly or through other structs
  held by value (holding it through a vector, a map or job<...> is fine); the
  error names the cycle, e.g. `struct A contains itself by value
  (A -> B -> A)`.

Afterwards StructType(name) is the reference form of a struct type: names
are unique and each resolves to exactly one StructDecl of the Program, so
later passes look layouts up by name.
"""
from __future__ import annotations

from compiler.errors import CompileError, Pos
from compiler.ir import types as T
from compiler.ir.surface import (FuncDecl, Program, StructDecl, VarDecl)
from compiler.ir.walk import walk


def _check_written_type(top: T.Type, structs: dict, pos: Pos, what: str,
                        void_ok: bool = False) -> None:
    """Reject unknown struct names and misplaced `void` in a written type.

    `what` names the thing being declared, e.g. "variable 'x'"; `void_ok`
    says whether `top` itself may be void (a return type).
    """
    def check(t: T.Type, may_be_void: bool, inside: str = "") -> None:
        if isinstance(t, T.VoidType):
            if may_be_void:
                return
            if t is top or t == top:
                raise CompileError(pos, f"{what} cannot have type void")
            raise CompileError(pos, f"invalid type {top} for {what}: "
                                    f"{inside} cannot be void")
        if isinstance(t, T.StructType):
            if t.name not in structs:
                raise CompileError(pos, f"unknown struct '{t.name}' in the type of {what}")
        elif isinstance(t, T.VectorType):
            check(t.elem, False, "a vector's elements")
        elif isinstance(t, T.JobType):
            check(t.result, True)
        elif isinstance(t, T.MapType):
            if t.key not in T.MAP_KEYS:
                raise CompileError(pos, f"invalid type {top} for {what}: a map's "
                                        "keys must be int, char, bool or string, "
                                        f"not {t.key}")
            check(t.value, False, "a map's values")

    check(top, void_ok)


def _held_by_value(t: T.Type) -> str | None:
    """The struct a field of type `t` holds by value, if any."""
    return t.name if isinstance(t, T.StructType) else None


def _find_cycle(start: StructDecl, structs: dict):
    """A path of (struct name, field) from `start` back to `start`, following
    by-value struct fields in declaration order, or None."""
    visited = set()

    def dfs(name, path):
        for fd in structs[name].fields:
            target = _held_by_value(fd.type)
            if target is None:
                continue
            step = path + [(name, fd)]
            if target == start.name:
                return step
            if target not in visited:
                visited.add(target)
                found = dfs(target, step)
                if found:
                    return found
        return None

    return dfs(start.name, [])


def run(prog: Program) -> Program:
    structs: dict[str, StructDecl] = {}
    for d in prog.decls:
        if isinstance(d, StructDecl):
            if d.name in structs:
                first = structs[d.name].pos
                raise CompileError(d.pos, f"duplicate struct '{d.name}' "
                                          f"(first declared at line {first.line})")
            structs[d.name] = d

    for d in prog.decls:
        if isinstance(d, StructDecl):
            seen = {}
            for fd in d.fields:
                if fd.name in seen:
                    raise CompileError(fd.pos, f"duplicate field '{fd.name}' in struct {d.name}")
                seen[fd.name] = fd
                _check_written_type(fd.type, structs, fd.pos,
                                    f"field '{fd.name}' of struct {d.name}")
        elif isinstance(d, FuncDecl):
            kind = "job" if d.is_job else "function"
            _check_written_type(d.ret, structs, d.pos,
                                f"the result of {kind} '{d.name}'", void_ok=True)
            for p in d.params:
                _check_written_type(p.type, structs, p.pos,
                                    f"parameter '{p.name}' of {kind} '{d.name}'")
        if not isinstance(d, StructDecl):
            for n in walk(d):
                if isinstance(n, VarDecl):
                    _check_written_type(n.type, structs, n.pos, f"variable '{n.name}'")

    for d in prog.decls:
        if isinstance(d, StructDecl):
            cycle = _find_cycle(d, structs)
            if cycle:
                names = " -> ".join([name for name, _ in cycle] + [d.name])
                raise CompileError(cycle[0][1].pos,
                                   f"struct {d.name} contains itself by value ({names})")
    return prog
