"""Tests of lower-vectors and insert-refcounts (compiler/ir/vectors.py).

- Every golden program of every area goes through both passes, and their
  outputs satisfy the IR checkers (check_lowered_vectors,
  check_refcounted).
- Every program of tests/golden/vectors/ is run by the reference
  interpreter of the refcounted IR (tests/vectors_interp.py), which
  simulates the runtime's reference counts: its output must equal the
  golden .out (and its runtime error the .err), no vector may be used
  after it is freed, and none may leak. This checks the ownership
  convention without codegen.
- Small programs pin individual decisions: where bounds checks and
  make-unique steps go, which parameters are retained, what a return
  moves, how temporaries are released.
"""
from __future__ import annotations

import pathlib

import attrs
import pytest

from compiler.errors import CompileError
from compiler.ir import vectors as V
from compiler.ir.printer import format_program
from compiler.ir.surface import FuncDecl, MasterDecl
from compiler.ir.walk import map_children, walk
from compiler.passes import insert_refcounts, lower_vectors
from compiler.pipeline import Source, run_pipeline
from harness import REPO, msc
from vectors_interp import run_program

GOLDEN = REPO / "tests" / "golden"


def typed(text: str, name: str = "t.ms"):
    prog, _ = run_pipeline(Source(name, text), stop_after="typecheck")
    return prog


def lowered(text: str):
    return lower_vectors.run(typed(text))


def counted(text: str):
    return insert_refcounts.run(lowered(text))


def dump(text: str) -> str:
    return format_program(counted(text))


def _compiles(path: pathlib.Path) -> bool:
    try:
        typed(path.read_text(), path.name)
        return True
    except CompileError:
        return False


ALL = [p for p in sorted(GOLDEN.rglob("*.ms")) if not p.stem.startswith("fail-")]
VECTORS = [p for p in sorted((GOLDEN / "vectors").glob("*.ms"))
           if not p.stem.startswith("fail-")]


def _id(p):
    return str(p.relative_to(GOLDEN).with_suffix(""))


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_passes_keep_invariants(path):
    if not _compiles(path):
        pytest.skip("rejected before lower-vectors")
    prog = typed(path.read_text(), path.name)
    before = format_program(prog)
    low = lower_vectors.run(prog)
    V.check_lowered_vectors(low)
    low_text = format_program(low)
    rc = insert_refcounts.run(low)
    V.check_refcounted(rc)
    # Pure passes: their inputs are unchanged.
    assert format_program(prog) == before
    assert format_program(low) == low_text


# The refcounted-IR interpreter runs a job to its end at `remote`, so a
# program whose job only ends by being cancelled cannot run there.
INTERPRETABLE = [p for p in VECTORS if "cancel(" not in p.read_text()]


@pytest.mark.parametrize("path", INTERPRETABLE, ids=_id)
def test_reference_interpreter(path):
    prog, _ = run_pipeline(Source(path.name, path.read_text()),
                           stop_after="insert-refcounts")
    out, error, leaks = run_program(prog, path.name)
    assert out == path.with_suffix(".out").read_text()
    err = path.with_suffix(".err")
    assert error == (err.read_text() if err.exists() else None)
    assert leaks == 0, f"{leaks} vectors leaked"


# ---------------------------------------------------------------- lower-vectors

def test_bounds_check_carries_bracket_position():
    text = dump("master {\n  vector<int> v;\n  print(v[0]);\n}\n")
    assert "(bounds-check@3:10)" in text


def test_every_index_has_a_check():
    prog = lowered("""master { vector<vector<int>> g; g[0][1] = g[1][0]; }""")
    checks = [n for n in walk(prog) if isinstance(n, V.BoundsCheck)]
    assert len(checks) == 4


def test_field_index_follows_declaration():
    prog = lowered("struct S { int a; string b; };\n"
                   "master { struct S s; s->b = \"x\"; }")
    fa, = [n for n in walk(prog) if isinstance(n, V.FieldAddr)]
    assert (fa.index, fa.name) == (1, "b")


def test_field_of_call_result_is_field_get():
    prog = lowered("struct S { int a; };\nstruct S f() { struct S s; return s; }\n"
                   "master { print(f()->a); }")
    assert any(isinstance(n, V.FieldGet) for n in walk(prog))
    assert not any(isinstance(n, V.FieldAddr) for n in walk(prog))


def test_string_order_is_string_cmp_against_zero():
    text = format_program(lowered('master { print("a" < "b"); }'))
    assert "(binary < (string-cmp" in text and "(int-lit 0):int" in text


def test_not_equal_on_vectors_negates_value_eq():
    text = format_program(lowered("master { vector<int> a; print(a != a); }"))
    assert "(unary ! (value-eq" in text


def test_chained_append_nests_pushes():
    prog = lowered("master { vector<int> v; v :: 1 :: 2; }")
    outer, = [s.expr for s in walk(prog) if hasattr(s, "expr")
              and isinstance(s.expr, V.VecPush)]
    assert isinstance(outer.place, V.VecPush)
    assert outer.value.value == 2 and outer.place.value.value == 1


def test_vector_compound_assign_is_an_in_place_concat():
    text = format_program(lowered('master { string s; s += "x"; }'))
    assert ('(store-op vec-concat (var-addr s):string (char-vector-lit "x")'
            in text)


def test_self_concat_is_an_in_place_concat():
    """`s = s + e` is `s += e` (appended in place when s is unique), and
    only when the left operand is the assigned variable itself."""
    text = format_program(lowered(
        'master { string s; string t; s = s + "x"; t = s + t; }'))
    assert ('(store-op vec-concat (var-addr s):string (char-vector-lit "x")'
            in text)
    assert "(store (var-addr t):string (vec-concat" in text


def test_scalar_programs_are_unchanged():
    text = "int f(int a) { return a * 2; }\nmaster { int x = 1; x += f(x); print(x); }"
    prog = typed(text)
    assert counted(text) == prog


# ---------------------------------------------------------------- insert-refcounts

def test_nested_write_makes_each_level_unique():
    text = dump("master { vector<vector<int>> grid; grid[1][0] = 3; }")
    assert ("(store (elem-addr (make-unique (elem-addr (make-unique "
            "(var-addr grid)") in text.replace(":vector<vector<int>>", "") \
        .replace(":vector<int>", "")


def test_write_through_struct_in_vector_makes_unique():
    prog = counted("struct S { vector<int> xs; };\n"
                   "master { vector<struct S> a; a[0]->xs[1] = 2; }")
    uniques = [n for n in walk(prog) if isinstance(n, V.MakeUnique)]
    assert [type(u.place).__name__ for u in uniques] == ["FieldAddr", "VarAddr"]


def test_read_only_parameter_is_borrowed():
    prog = counted("int f(vector<int> v) { return v[0]; }\nmaster { }")
    assert not any(isinstance(n, (V.Retain, V.OwnedParam, V.ReleaseVar,
                                  V.Move, V.ReturnReleasing)) for n in walk(prog))


def test_written_parameter_is_passed_owned():
    prog = counted("int f(vector<int> v) { v :: 1; return len(v); }\n"
                   "master { vector<int> a; print(f(a)); print(len(a)); }")
    fn = next(d for d in prog.decls if isinstance(d, FuncDecl))
    assert isinstance(fn.body.stmts[0], V.OwnedParam)
    assert V.owned_params(fn) == {"v"}
    ret = fn.body.stmts[-1]
    assert isinstance(ret, V.ReturnReleasing) and ret.releases == ("v",)
    # The caller still needs a: it passes a retained copy.
    assert "(call f [(retain (name a)" in format_program(prog)


def test_return_of_local_moves_it():
    prog = counted("vector<int> f() { vector<int> v; v :: 1; return v; }\nmaster { }")
    fn = next(d for d in prog.decls if isinstance(d, FuncDecl))
    ret = fn.body.stmts[-1]
    assert type(ret).__name__ == "Return" and isinstance(ret.value, V.Move)


def test_copy_into_variable_retains():
    text = dump("master { vector<int> a; vector<int> b = a; print(len(a)); }")
    assert "var-decl vector<int> b (retain (name a)" in text


def test_copy_at_last_use_moves():
    text = dump("master { vector<int> a; vector<int> b = a; print(len(b)); }")
    assert "var-decl vector<int> b (move a)" in text


def test_owned_value_moves_into_variable():
    text = dump('master { string s = str(1) + "x"; }')
    assert "retain" not in text


def test_discarded_result_is_released():
    text = dump("vector<int> f() { vector<int> v; return v; }\nmaster { f(); }")
    assert "expr-stmt (release (call f" in text


def test_temporary_released_after_its_consumer():
    text = dump("vector<int> f() { vector<int> v; return v; }\n"
                "master { print(len(f())); }")
    assert "(release-after [%1] (vec-len (temp %1 (call f" in text


def test_string_literals_are_never_counted():
    text = dump('master { string s = "abc"; print("x" + s); s = "y"; }')
    assert "(retain (char-vector-lit" not in text
    assert "(temp %1 (char-vector-lit" not in text


def test_break_and_continue_release_the_loop_body():
    prog = counted("master { while (true) { vector<int> v; v :: 1;"
                   " if (len(v) > 0) { continue; } break; } }")
    names = [s for s in walk(prog) if isinstance(s, V.ReleaseVar)]
    # before continue, before break; the block end is not reachable.
    assert [r.name for r in names] == ["v", "v"]


def test_for_init_variable_released_after_loop():
    prog = counted("master { for (string s = \"a\"; len(s) < 3; s += \"b\") { } }")
    master = next(d for d in prog.decls if isinstance(d, MasterDecl))
    last = master.body.stmts[-1]
    assert isinstance(last, V.ReleaseVar) and last.name == "s"


def test_borrow_before_append_in_same_call_is_protected():
    text = dump("int f(vector<int> a, vector<int> b) { return len(a); }\n"
                "master { vector<int> v; print(f(v, v :: 1)); }")
    assert "(temp %1 (retain (name v)" in text


def test_index_that_appends_holds_its_vector_first():
    # SPEC 11: v is evaluated before the index; the held reference makes
    # the append copy v, so the element is read from v's old value.
    text = dump("master { vector<int> v; v :: 1;\n"
                "  print(v[len(v :: 8) - 1]); }")
    assert "(load (elem-addr (temp %1 (retain (name v)" in text
    assert "(release-after [%1] (load (elem-addr" in text


def test_nested_and_field_reads_whose_index_appends_hold_their_vector():
    text = dump("struct S { vector<int> f; };\n"
                "master { vector<vector<int>> g; struct S s;\n"
                "  print(g[0][len(g[0] :: 5) - 1]);\n"
                "  print(s->f[len(s->f :: 4) - 1]); }")
    assert text.count("(elem-addr (temp %") == 2
    assert text.count("(retain (load (elem-addr (name g)") == 1
    assert text.count("(retain (load (field-addr (var-addr s)") == 1


def test_index_that_cannot_append_takes_no_reference():
    text = dump("master { vector<vector<int>> g; vector<int> v;\n"
                "  print(g[0][len(v)]); print(v[len(g) - 1]); }")
    assert "retain" not in text and "temp" not in text


def test_checker_rejects_borrowed_vector_under_appending_index():
    prog = counted("master { vector<int> v; print(v[len(v :: 8) - 1]); }")
    V.check_refcounted(prog)

    def unhold(n):
        if isinstance(n, V.ElemAddr) and isinstance(n.vec, V.Temp):
            return attrs.evolve(n, vec=n.vec.value.value)   # the plain name
        if isinstance(n, V.ReleaseAfter):
            return unhold(n.body)
        return map_children(n, unhold)
    with pytest.raises(AssertionError, match="index appends"):
        V.check_refcounted(unhold(prog))


def test_passes_do_not_mutate_their_input():
    prog = lowered("master { vector<int> v; v :: 1; print(v[0]); }")
    copy = attrs.evolve(prog)
    insert_refcounts.run(prog)
    assert prog == copy


def test_checker_rejects_a_move_of_a_borrowed_parameter():
    prog = counted("vector<int> f(vector<int> v) { return v; }\nmaster { }")
    V.check_refcounted(prog)
    fn = next(d for d in prog.decls if isinstance(d, FuncDecl))
    ret = fn.body.stmts[-1]
    assert isinstance(ret.value, V.Retain)      # borrowed: retained
    moved = attrs.evolve(ret, value=V.Move(name="v", type=ret.value.type,
                                            pos=ret.pos))
    bad = attrs.evolve(prog, decls=tuple(
        attrs.evolve(d, body=attrs.evolve(d.body, stmts=(moved,)))
        if d is fn else d for d in prog.decls))
    with pytest.raises(AssertionError, match="not owned"):
        V.check_refcounted(bad)


def test_no_move_when_a_continue_leads_back_to_a_read():
    text = dump("vector<int> push(vector<int> v, int x) { v :: x; return v; }\n"
                "master { vector<int> v; vector<int> w; int k = 0;\n"
                "  for (int i = 0; i < len(v) + 2; i += 1) {\n"
                "    if (i == 0) { w = push(v, i); continue; } k += 1; }\n"
                "  while (k < 3) { k += 1; w = push(v, k); if (k > 1) { continue; } }\n"
                "  print(len(w)); }")
    master = text.split("\nmaster\n")[1]
    assert "(call push [(move v)" not in master
    assert master.count("(call push [(retain (name v)") == 2
    # v is dead once the loops are done: dropped there, not at the end.
    assert master.index("(release (move v)") > master.index("while")


def test_move_on_the_last_iteration_path_only_when_the_loop_ends_there():
    # v is replaced before every later read: moved inside the loop.
    text = dump("vector<int> push(vector<int> v, int x) { v :: x; return v; }\n"
                "master { vector<int> v;\n"
                "  for (int i = 0; i < 3; i += 1) { v = push(v, i); }\n"
                "  print(len(v)); }")
    assert "(call push [(move v)" in text


def test_only_invariant_scalar_append_loops_fill(tmp_path):
    """codegen runs `for (...) v :: x;` as one repeat (a `for.fill` block)
    when x is an invariant scalar and the append is the whole body; an
    element that depends on the loop, or a second statement, keeps the
    element-by-element loop (tests/golden/vectors/fill-loops.ms runs them)."""
    src = tmp_path / "fill.ms"
    src.write_text(
        "master {\n  int n = 10; int k = 2;\n  vector<int> a; vector<int> b;"
        " vector<int> c;\n"
        "  for (int i = 0; i < n; i += 1) a :: k + 1;\n"
        "  for (int i = 0; i < n; i += 1) b :: i;\n"
        "  for (int i = 0; i < n; i += 1) { c :: 1; k += 1; }\n"
        "  print(len(a) + len(b) + len(c) + k);\n}\n")
    out = msc("--dump-after", "codegen", src)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\nfor.fill:") == 1
    assert out.stdout.count("call {i64, i64, i64}* @\"ms_vec_repeat\"") == 1
