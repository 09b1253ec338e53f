"""desugar-strings: surface IR -> surface IR without strings.

`string` is exactly `vector<char>` (SPEC section 3), so this pass rewrites
every written `string` type (in declarations, parameters, fields, return
types, and nested in vector<...> or job<...>) to `vector<char>`, and every
string literal to a CharVectorLit holding its bytes. String `+`, comparison
and equality need no rewriting here: once the types agree, they are the
vector operations that typecheck and lower-vectors already handle.

Afterwards no node mentions StringType or StringLit.
"""
from __future__ import annotations

import attrs

from compiler.ir import types as T
from compiler.ir.surface import CharVectorLit, Node, Program, StringLit
from compiler.ir.walk import map_children


def desugar_type(t: T.Type) -> T.Type:
    if isinstance(t, T.StringType):
        return T.STRING
    if isinstance(t, T.VectorType):
        return T.VectorType(desugar_type(t.elem))
    if isinstance(t, T.JobType):
        return T.JobType(desugar_type(t.result))
    if isinstance(t, T.MapType):
        return T.MapType(desugar_type(t.key), desugar_type(t.value))
    return t


def _rewrite(node: Node) -> Node:
    if isinstance(node, StringLit):
        return CharVectorLit(value=node.value, type=node.type, pos=node.pos)
    node = map_children(node, _rewrite)
    changes = {}
    for f in attrs.fields(type(node)):
        value = getattr(node, f.name)
        if isinstance(value, T.Type):
            new = desugar_type(value)
            if new != value:
                changes[f.name] = new
    return attrs.evolve(node, **changes) if changes else node


def run(prog: Program) -> Program:
    return _rewrite(prog)
