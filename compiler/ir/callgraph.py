"""The call graph of a program's functions and its strongly connected
components, for codegen's stack-overflow checks: only a call whose caller
and callee lie in one component (a cycle, a self-call included) can
recurse, so only those calls pay for a check (SPEC section 11). lower-remote
uses it too, to place cancellation checks in the functions that jobs reach
(`job_reachable`) and at the entry of those that may recurse.
"""
from __future__ import annotations

from compiler.ir.surface import Call, FuncDecl
from compiler.ir.walk import walk


def call_edges(funcs: dict) -> dict[str, list[str]]:
    """name -> the user functions it calls, in first-call order."""
    edges = {}
    for name, decl in funcs.items():
        seen = []
        for n in walk(decl.body):
            if isinstance(n, Call) and n.name in funcs and n.name not in seen:
                seen.append(n.name)
        edges[name] = seen
    return edges


def recursive_pairs(funcs: dict[str, FuncDecl]) -> set[tuple[str, str]]:
    """The (caller, callee) pairs of calls that may recurse: both in one
    strongly connected component of the call graph (Tarjan, iterative)."""
    edges = call_edges(funcs)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    component: dict[str, int] = {}
    counter = 0
    for root in funcs:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            recurse = False
            succ = edges[v]
            while i < len(succ):
                w = succ[i]
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component[w] = index[v]
                    if w == v:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return {(a, b) for a, succ in edges.items() for b in succ
            if component[a] == component[b]}


def job_reachable(funcs: dict[str, FuncDecl]) -> set[str]:
    """The functions a job reaches through calls, the jobs included: the
    code that may run on a slave."""
    edges = call_edges(funcs)
    seen = {name for name, decl in funcs.items() if decl.is_job}
    work = list(seen)
    while work:
        for callee in edges[work.pop()]:
            if callee not in seen:
                seen.add(callee)
                work.append(callee)
    return seen
