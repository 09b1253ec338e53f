"""The builtin table (compiler/builtins.py): what reads it agrees with it,
the docs' table is generated from it, and typecheck enforces its master-only
rule by the call chains that `remote` uses."""
from __future__ import annotations

import textwrap

import attrs
import pytest

import vectors_interp
from compiler import builtins as B
from compiler.codegen import runtime_abi
from compiler.codegen.functions import FunctionEmitter
from compiler.errors import CompileError
from compiler.passes import lower_remote, lower_vectors, typecheck
from compiler.pipeline import Source, run_pipeline
from tools import builtins_doc, msi

# A copy of the table with a made-up master-only builtin, `master_str`
# (str's types), to test the rule apart from the real master-only
# builtins (SPEC 12's args, read_stdin, write_file; tested at the end).
MASTER_ONLY = B.table(B.ENTRIES + (
    attrs.evolve(B.TABLE["str"], name="master_str", where=B.MASTER_ONLY),))


def check(src: str, builtins=MASTER_ONLY):
    prog, _ = run_pipeline(Source("t.ms", textwrap.dedent(src)),
                           stop_after="resolve-structs")
    return typecheck.check(prog, builtins)


def error(src: str, builtins=MASTER_ONLY) -> CompileError:
    with pytest.raises(CompileError) as info:
        check(src, builtins)
    return info.value


def test_master_only_builtin_in_master_and_its_functions():
    check("""
        string line() { return master_str(1); }
        job int work(int n) { return n; }
        master { print(master_str(2)); print(line()); print(get(remote work(1))); }
    """)


def test_master_only_builtin_in_a_job():
    e = error("""
        job int work(int n) { print(master_str(n)); return n; }
        master { }
    """)
    assert e.message == "'master_str' runs only in the master, not in job 'work'"
    assert (e.pos.line, e.pos.col) == (2, 29)


def test_master_only_builtin_reachable_from_a_job_names_a_shortest_chain():
    e = error("""
        void helper() { print(master_str(0)); }
        void step() { helper(); }
        void far() { step(); }
        job int work(int n) { far(); step(); return n; }
        master { helper(); }
    """)
    assert e.message == ("'master_str' runs only in the master, not in "
                         "'helper', which job 'work' can reach "
                         "(work -> step -> helper)")
    assert (e.pos.line, e.pos.col) == (2, 23)


def test_first_master_only_node_wins_remote_or_builtin():
    src = """
        job int other(int n) { return n; }
        void helper() { print(master_str(0)); remote other(1); }
        job int work(int n) { helper(); return n; }
        master { }
    """
    assert error(src).message.startswith("'master_str' runs only")
    # With the language's table the same name is unknown, and typecheck
    # says so before it looks at jobs.
    assert error(src, B.TABLE).message == "unknown function 'master_str'"
    swapped = src.replace("print(master_str(0)); remote other(1);",
                          "remote other(1); print(master_str(0));")
    assert error(swapped).message == ("remote call in 'helper', which job "
                                      "'work' can reach (work -> helper)")


def test_a_function_may_not_be_named_like_a_builtin_of_the_table():
    e = error("void master_str() { } master { }")
    assert e.message == ("cannot declare function 'master_str': "
                         "that is the name of a builtin")


def test_docs_table_is_generated_from_the_table():
    doc = builtins_doc.DOC.read_text(encoding="utf-8")
    assert builtins_doc.render(doc) == doc, \
        "docs/language.md is out of date: run python -m tools.builtins_doc"
    for name in B.TABLE:
        assert f"| `{name}` |" in doc


def test_every_lowering_names_something_that_exists():
    nodes = {"lower-vectors": lower_vectors._NODE_OF,
             "lower-remote": lower_remote._NODE_OF}
    for b in B.TABLE.values():
        lowerings = ([b.lowering] if isinstance(b.lowering, B.Lowering)
                     else [lowering for _, lowering in b.lowering])
        for low in lowerings:
            if low.how == "node":
                assert low.name in nodes[low.by], (b.name, low)
            elif low.how == "codegen":
                assert hasattr(FunctionEmitter, f"builtin_{low.name}"), b.name
            else:
                assert low.how in ("intrinsic", "libm", "runtime"), b.name
                assert low.name in runtime_abi._SIGNATURES, (b.name, low)


def test_interpreters_implement_exactly_the_table():
    with_c = {n for n, b in B.TABLE.items() if b.c_function is not None}
    assert set(msi.IMPLEMENTED) == set(B.TABLE) - with_c
    lowered = {n for n, b in B.TABLE.items()
               if b.lowering_by() == "lower-vectors"}
    assert set(vectors_interp.IMPLEMENTED) == set(B.TABLE) - with_c - lowered


@pytest.mark.parametrize("call", ['args()', 'read_stdin()',
                                  'write_file("f", "x")'])
def test_spec_12_master_only_builtins(call):
    """SPEC 12: these may not be used in a job (the others may)."""
    e = error(f"""
        job int work(int n) {{ {call}; return n; }}
        master {{ }}
    """, B.TABLE)
    name = call.split("(")[0]
    assert e.message == f"'{name}' runs only in the master, not in job 'work'"
    check(f"""
        job string work(string p) {{ eprint(p); print(len(list_dir(p)));
                                     return read_file(p); }}
        master {{ {call}; print(get(remote work("."))); }}
    """, B.TABLE)
