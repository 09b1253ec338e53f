"""A deterministic text form of any IR of the pipeline before codegen.

Statements print one per line, indented by nesting; expressions print inline
as s-expressions, each followed by `:type` once typecheck has typed it.
Positions and object ids are never printed, so dumps are stable and can be
diffed by golden tests. Node kinds added by later passes print through the
same generic rules, so every IR has a printer without extra code.
"""
from __future__ import annotations

import re

import attrs

from compiler.ir.surface import (Expr, FuncDecl, MasterDecl, Node, Param,
                                 Program, StructDecl, FieldDecl)
from compiler.ir.types import Type


def kind_name(node: Node) -> str:
    """`CharVectorLit` -> `char-vector-lit`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(node).__name__).lower()


def format_scalar(value) -> str:
    if isinstance(value, bytes):
        return '"' + "".join(
            chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}"
            for b in value) + '"'
    if isinstance(value, str):
        return value if re.fullmatch(r"[^\s()\"]+", value) else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_expr(e) -> str:
    if e is None:
        return "_"
    if not isinstance(e, Node):
        return format_scalar(e)
    parts = [kind_name(e)]
    if getattr(type(e), "print_pos", False) and e.pos is not None:
        parts[0] += f"@{e.pos.line}:{e.pos.col}"
    for f in attrs.fields(type(e)):
        if f.name in ("pos", "type"):
            continue
        value = getattr(e, f.name)
        if isinstance(value, tuple):
            parts.append("[" + " ".join(format_expr(v) for v in value) + "]")
        elif isinstance(value, Type):
            parts.append(str(value))
        else:
            parts.append(format_expr(value))
    text = "(" + " ".join(parts) + ")"
    etype = getattr(e, "type", None)
    if isinstance(e, Expr) and etype is not None:
        text += f":{etype}"
    return text


def _is_stmt_like(value) -> bool:
    return isinstance(value, Node) and not isinstance(value, Expr)


def format_stmt(s, indent: int, out: list) -> None:
    pad = "  " * indent
    head = [kind_name(s)]
    nested = []
    for f in attrs.fields(type(s)):
        if f.name == "pos":
            continue
        value = getattr(s, f.name)
        if _is_stmt_like(value):
            nested.append((f.name, (value,)))
        elif isinstance(value, tuple) and any(_is_stmt_like(v) for v in value):
            nested.append((f.name, value))
        elif isinstance(value, Type):
            head.append(str(value))
        elif isinstance(value, tuple):
            head.append("[" + " ".join(format_expr(v) for v in value) + "]")
        elif value is None and f.name in ("init", "else_", "step", "cond", "value"):
            continue
        else:
            head.append(format_expr(value))
    out.append(pad + " ".join(head))
    several = len(nested) > 1
    for name, items in nested:
        if several:
            out.append(pad + "  " + name.rstrip("_") + ":")
        for item in items:
            format_stmt(item, indent + (2 if several else 1), out)


def format_program(prog: Program) -> str:
    out: list[str] = []
    for d in prog.decls:
        if isinstance(d, StructDecl):
            out.append(f"struct {d.name}")
            for fd in d.fields:
                out.append(f"  field {fd.type} {fd.name}")
        elif isinstance(d, FuncDecl):
            params = ", ".join(f"{p.type} {p.name}" for p in d.params)
            kw = "job" if d.is_job else "func"
            out.append(f"{kw} {d.name}({params}) -> {d.ret}")
            for s in d.body.stmts:
                format_stmt(s, 1, out)
        elif isinstance(d, MasterDecl):
            out.append("master")
            for s in d.body.stmts:
                format_stmt(s, 1, out)
        else:
            format_stmt(d, 0, out)
    return "\n".join(out) + "\n"
