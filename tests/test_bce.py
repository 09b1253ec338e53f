"""Tests of eliminate-bounds-checks (compiler/passes/eliminate_bounds_checks.py).

- Every program of tests/golden/bce/ and the edge cases below behave
  exactly the same (stdout, stderr, exit status) built with the pass and
  built without it: a proven access never hides an out-of-bounds error,
  and a versioned loop whose guard fails runs the original loop.
- The same programs run on the reference interpreter of the refcounted IR
  (tests/vectors_interp.py), which fails on any in-bounds access that is
  out of bounds.
- Small programs pin which accesses are proven (the golden .ir dumps of
  tests/golden/bce/ show the whole rewrite).
"""
from __future__ import annotations

import subprocess

import pytest

from compiler.codegen import backend
from compiler.ir import vectors as V
from compiler.ir.walk import walk
from compiler.passes import eliminate_bounds_checks
from compiler.pipeline import Source, run_pipeline
from harness import REPO
from vectors_interp import run_program

BCE = REPO / "tests" / "golden" / "bce"

MAX = "9223372036854775807"

# Edge cases of the guard's arithmetic (int wraps, SPEC section 3): name ->
# (source, whether some access is proven).
EDGES = {
    "offset-wraps": (f"""
master {{
    vector<int> v;
    v :: 1; v :: 2;
    int big = {MAX};
    for (int j = 0; j < 2; j += 1) print(v[big + j]);
}}""", True),
    "minus-min-wraps": (f"""
master {{
    vector<int> v;
    v :: 1; v :: 2;
    int m = -{MAX} - 1;
    for (int j = 1; j < 3; j += 1) print(v[j - m]);
}}""", True),
    "variable-negative-start": ("""
master {
    vector<int> v;
    v :: 1; v :: 2; v :: 3;
    int s = -1;
    for (int j = s; j < len(v) - 1; j += 1) print(v[j + 1]);
    for (int j = s; j < len(v); j += 1) print(v[j]);
}""", True),
    "start-near-max": (f"""
master {{
    vector<int> v;
    v :: 7;
    int s = {MAX} - 1;
    for (int j = s; j <= {MAX} - 1; j += 1) print(v[j - s]);
    for (int j = s; j <= {MAX}; j += 1) print(v[j - s]);
}}""", True),
    # j <= MAX wraps to MIN after MAX, and the loop goes on: the guard
    # must not let that run unchecked (j - s then counts on past len(v)).
    "inclusive-max-wraps": (f"""
master {{
    vector<int> v;
    for (int i = 0; i < 10; i += 1) v :: i;
    int s = {MAX} - 5;
    for (int j = s; j <= {MAX}; j += 1) print(v[j - s]);
}}""", True),
    # A step of 7 wraps j past MAX to MIN + 3, and j < MAX goes on.
    "step-wraps": (f"""
master {{
    vector<int> v;
    for (int i = 0; i < 20; i += 1) v :: i;
    int s = {MAX} - 10;
    for (int j = s; j < {MAX}; j += 7) print(v[j - s]);
}}""", True),
    "step-variable": ("""
master {
    vector<int> v;
    for (int i = 0; i < 20; i += 1) v :: i;
    int k = 3;
    for (int j = 2; j <= 19; j += k) print(v[j]);
    k = -1;
    for (int j = 2; j <= 19; j += k) print(v[j]);
}""", True),
    "empty-and-break": ("""
master {
    vector<int> v;
    v :: 1; v :: 2;
    int n = -5;
    for (int j = 0; j < n; j += 1) print(v[j]);
    for (int j = 0; j < 100; j += 1) { if (j == 2) break; print(v[j]); }
    for (int j = 0; j < 100; j += 1) { print(v[j]); }
}""", True),
    "assigned-bound": ("""
master {
    vector<int> v;
    v :: 1; v :: 2;
    int n = 2;
    for (int j = 0; j < n; j += 1) { n = 3; print(v[j]); }
}""", False),
    "vector-replaced": ("""
master {
    vector<int> v;
    v :: 1; v :: 2;
    vector<int> w;
    w :: 5;
    for (int j = 0; j < len(v); j += 1) { print(v[j]); v = w; }
}""", False),
}


def _programs():
    for ms in sorted(BCE.glob("*.ms")):
        yield pytest.param(ms.name, ms.read_text(), id=ms.stem)
    for name, (text, _) in EDGES.items():
        yield pytest.param(name + ".ms", text, id=name)


def _build(name, text, tmp_path, tag):
    ir, _ = run_pipeline(Source(name, text))
    out = tmp_path / tag
    backend.build_executables(ir, 2, str(out))
    return out


def _run(prefix, cwd):
    return subprocess.run([f"{prefix}-master"], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name,text", list(_programs()))
def test_same_behaviour_without_the_pass(name, text, tmp_path, monkeypatch,
                                         runtime_built):
    with_pass = _run(_build(name, text, tmp_path, "with"), tmp_path)
    monkeypatch.setattr(eliminate_bounds_checks, "run", lambda prog: prog)
    without = _run(_build(name, text, tmp_path, "without"), tmp_path)
    assert (with_pass.returncode, with_pass.stdout, with_pass.stderr) == \
        (without.returncode, without.stdout, without.stderr)


@pytest.mark.parametrize("name,text", list(_programs()))
def test_reference_interpreter_never_sees_a_proven_access_fail(name, text):
    prog, _ = run_pipeline(Source(name, text), stop_after="insert-refcounts")
    run_program(prog, name)     # asserts on an in-bounds access out of range


def _proven(text: str) -> int:
    prog, _ = run_pipeline(Source("t.ms", text),
                           stop_after="eliminate-bounds-checks")
    return sum(isinstance(n, V.InBounds) for n in walk(prog))


@pytest.mark.parametrize("name", list(EDGES))
def test_edge_cases_prove_what_they_should(name):
    text, proven = EDGES[name]
    assert (_proven(text) > 0) == proven


def test_shadowed_vector_keeps_its_check():
    text = """
master {
    vector<int> v;
    v :: 1;
    for (int j = 0; j < len(v); j += 1) {
        vector<int> v;
        v :: 2; v :: 3;
        print(v[j]);
    }
}"""
    assert _proven(text) == 0


def test_pushing_into_a_row_does_not_resize_the_outer_vector():
    text = """
master {
    vector<vector<int>> m;
    vector<int> row;
    m :: row; m :: row;
    for (int i = 0; i < len(m); i += 1) m[i] :: i;
    print(len(m[1]));
}"""
    assert _proven(text) == 1


def test_large_bodies_are_not_duplicated(monkeypatch):
    text = """
master {
    vector<int> v;
    v :: 1;
    int n = 1;
    for (int j = 0; j < n; j += 1) print(v[j] + v[j] + v[j]);
}"""
    assert _proven(text) == 3
    monkeypatch.setattr(eliminate_bounds_checks, "MAX_VERSIONED_NODES", 5)
    assert _proven(text) == 0
