"""Tests of lower-remote, codegen and the backend.

- module tests compile a program through the pipeline in process, verify
  the LLVM module and optimize it at every level;
- unit tests check the call graph, lower-remote (its cancel-checks
  included) and the rejection of what codegen does not compile yet;
- execution tests compile with msc, run NAME-master (which starts local
  slaves) with a timeout and compare its stdout, stderr and exit status.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import llvmlite.binding as llvm
import pytest

from harness import REPO, build_program, msc, run_master, write_program

import compiler
from compiler.codegen import backend
from compiler.errors import CompileError, Pos
from compiler.ir import check
from compiler.ir import lowered as L
from compiler.ir import surface as S
from compiler.ir import types as T
from compiler.ir.walk import map_children, walk
from compiler.pipeline import Source, run_pipeline
from compiler.version import compiler_version
from compiler.ir.callgraph import recursive_pairs

RUN_TIMEOUT = 60


def compile_module(text: str, path: str = "prog.ms"):
    module, _ = run_pipeline(Source(path, textwrap.dedent(text)))
    check.check_llvm(module)
    return module


def lower(text: str):
    prog, _ = run_pipeline(Source("prog.ms", textwrap.dedent(text)),
                           stop_after="lower-remote")
    return prog


# ---------------------------------------------------------------- modules

CONSTRUCTS = {
    "arith": """
        master {
            int a = 7; int b = -2;
            print(a + b); print(a - b); print(a * b); print(a / b);
            print(a % b); print(-a);
            a += 3; a -= 1; a *= 2; a /= 3; a %= 4;
            double x = 1.5; x += 2.0; x /= 0.0;
            print(x); print(-x);
        }""",
    "compare": """
        master {
            print(1 < 2); print(1.0 <= 2.0); print('a' > 'b');
            print(true == false); print(running != finished);
            print(1.0 != 0.0 / 0.0);
            job<int> u; job<int> v; print(u == v);
        }""",
    "control": """
        int f(int n) {
            int s = 0;
            for (int i = 0; i < n; i += 1) {
                if (i % 2 == 0) { continue; }
                if (i > 7) break;
                s += i;
            }
            while (true) { if (s > 100) return s; s *= 2; }
        }
        void g() { return; }
        void h() { }
        master { print(f(10)); g(); h(); for (;;) { break; } ; return; }""",
    "builtins": """
        master {
            print(sqrt(2.0)); print(exp(1.0)); print(log(2.0));
            print(sin(1.0)); print(cos(1.0)); print(tan(1.0));
            print(atan2(1.0, 2.0)); print(pow(2.0, 0.5));
            print(floor(1.5)); print(ceil(1.5));
            print(abs(-3)); print(abs(-3.0));
            print(min(1, 2)); print(max(1, 2));
            print(min(1.0, 2.0)); print(max(1.0, 2.0));
            print(int(2.5)); print(int('a')); print(int(true)); print(int(3));
            print(double(3)); print(double(3.0));
            print(char(66)); print(char('x'));
        }""",
    "jobs": """
        job int add(int a, int b) { return a + b; }
        job double half(double x) { return x / 2.0; }
        job bool neg(bool b) { return !b; }
        job char up(char c) { return char(int(c) - 32); }
        job void nothing() { }
        master {
            job<int> j = remote add(1, 2);
            print(get(j)); print(state(j)); cancel(j);
            print(get(remote half(3.0)));
            print(get(remote neg(true)));
            print(get(remote up('a')));
            get(remote nothing());
            print(add(1, 2));
        }""",
    "mutual-recursion": """
        bool even(int n) { if (n == 0) return true; return odd(n - 1); }
        bool odd(int n) { if (n == 0) return false; return even(n - 1); }
        master { print(even(10)); }""",
    "vectors": """
        struct P { string name; vector<double> xs; bool ok; };
        struct H { job<int> j; struct P p; };
        struct E {};
        job struct P touch(struct P p, vector<vector<int>> m) {
            p->name += "!"; p->xs :: double(len(m)); p->ok = !p->ok;
            return p;
        }
        master {
            vector<struct P> ps; struct P p; p->name = "a";
            ps :: p :: p;
            ps[0]->xs :: 1.5;
            ps[1]->ok = true;
            vector<vector<int>> m; vector<int> row; row :: len(ps[0]->xs);
            m :: row; m[0][0] += 1;
            struct P q = get(remote touch(ps[1], m));
            print(q->name); print(q->ok); print(ps[0] == ps[1]);
            string s; for (int i = 0; i < 3; i += 1) { s += str(i); s :: 'x'; }
            print(s < "1"); print(len(s + s));
            vector<struct E> es; es :: es[0];
            struct H h; vector<struct H> hs; hs :: h; hs[0]->p = p;
        }""",
    "short-circuit": """
        bool t(int n) { print(n); return true; }
        master { print(t(1) && (t(2) || t(3)) && !t(4)); }""",
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTS))
@pytest.mark.parametrize("opt", [0, 1, 2, 3])
def test_module_verifies_and_optimizes(name, opt):
    module = compile_module(CONSTRUCTS[name])
    ref, _ = backend.optimize(module, opt)
    ref.verify()


def test_part_a_symbols():
    module = compile_module(CONSTRUCTS["jobs"])
    text = str(module)
    ref = llvm.parse_assembly(text)
    names = {g.name: g for g in ref.global_variables}
    for sym in ("ms_job_table", "ms_job_count", "ms_program_source",
                "ms_compiler_version"):
        assert sym in names and names[sym].linkage == llvm.Linkage.external
    version = compiler_version()
    assert f'@"ms_compiler_version" = constant [{len(version) + 1} x i8] ' \
           f'c"{version}\\00"' in text
    main = ref.get_function("ms_master_main")
    assert main.linkage == llvm.Linkage.external
    assert '@"ms_job_count" = constant i32 5' in text
    assert 'c"prog.ms\\00"' in text
    # Signatures in ordinal order.
    for sig in ('c"add\\00"', 'c"ii\\00"', 'c"i\\00"', 'c"d\\00"',
                'c"b\\00"', 'c"c\\00"', 'c"nothing\\00"', 'c"\\00"'):
        assert sig in text
    # User functions are internal and cannot clash with C symbols.
    for f in ref.functions:
        if f.name.startswith("ms.fn.") or f.name.startswith("ms.jobrun."):
            assert f.linkage == llvm.Linkage.internal


def test_user_names_do_not_clash_with_c_symbols(tmp_path):
    module = compile_module("""
        int main(int x) { return x + 1; }
        int printf(int x) { return x; }
        int ms_start_job(int x) { return exit(x); }
        int exit(int x) { return x; }
        master { print(main(printf(ms_start_job(1)))); }""")
    ref, _ = backend.optimize(module, 2)
    ref.verify()
    assert "ms.fn.main" in str(module)


def test_module_text_is_deterministic():
    a = str(compile_module(CONSTRUCTS["jobs"]))
    b = str(compile_module(CONSTRUCTS["jobs"]))
    assert a == b
    c = str(compile_module(CONSTRUCTS["jobs"], path="other.ms"))
    diff = [(x, y) for x, y in zip(a.splitlines(), c.splitlines()) if x != y]
    assert len(a.splitlines()) == len(c.splitlines())
    assert [x.split()[0] for x, _ in diff] == [";", '@"ms_program_source"']


def test_division_checks_zero_and_minus_one():
    text = str(compile_module("""
        master { int a = 5; int b = 0; print(a / b); print(a % b); }"""))
    assert text.count('"division by zero') >= 1
    assert "icmp eq i64" in text and "-1" in text
    assert " nsw " not in text and " nuw " not in text


def test_recursive_calls_get_a_stack_check_and_others_do_not():
    module = compile_module("""
        int leaf(int n) { return n + 1; }
        int rec(int n) { if (n == 0) return leaf(0); return rec(n - 1); }
        master { print(rec(3)); print(leaf(1)); }""")
    checks = {fn.name: str(fn).count("call i8* @\"llvm.frameaddress")
              for fn in module.functions if fn.blocks}
    # rec and its twins (compiler/passes/codegen.py), one check each.
    assert checks == {"ms.fn.leaf": 0, "ms.fn.rec": 1, "ms.fn.rec.twin1": 1,
                      "ms.fn.rec.twin2": 1, "ms_master_main": 0}, checks
    text = str(module)
    assert "notail call i64 @\"ms.fn.rec.twin1\"" in text
    assert "notail call i64 @\"ms.fn.rec\"" in text


def test_stack_check_survives_optimization():
    """Endless recursion must stay a recursion at -O3 (not become a loop)."""
    module = compile_module("""
        int down(int n) { return down(n + 1) + 1; }
        master { print(down(0)); }""")
    ref, _ = backend.optimize(module, 3)
    # down or one of its twins (compiler/passes/codegen.py) calls the family.
    family = [f for f in ref.functions if f.name.startswith("ms.fn.down")]
    calls = [i for f in family for b in f.blocks for i in b.instructions
             if i.opcode == "call" and "@ms.fn.down" in str(i)]
    assert calls, str(ref)


# ---------------------------------------------------------------- units

def _func(name, calls):
    p = Pos("t.ms", 1, 1)
    stmts = tuple(S.ExprStmt(expr=S.Call(name=c, args=(), type=T.VOID, pos=p),
                             pos=p) for c in calls)
    return S.FuncDecl(name=name, params=(), ret=T.VOID,
                      body=S.Block(stmts=stmts, pos=p), pos=p)


def test_recursive_pairs_are_the_sccs():
    funcs = {n: _func(n, cs) for n, cs in [
        ("a", ["b"]), ("b", ["c", "a"]), ("c", ["c", "d"]), ("d", []),
        ("e", ["print"])]}
    assert recursive_pairs(funcs) == {("a", "b"), ("b", "a"), ("c", "c")}


def test_recursive_pairs_deep_chain_has_no_python_recursion():
    n = 5000
    funcs = {f"f{i}": _func(f"f{i}", [f"f{i + 1}"] if i < n else ["f0"])
             for i in range(n + 1)}
    pairs = recursive_pairs(funcs)
    assert len(pairs) == n + 1


def test_lower_remote_makes_job_operations_explicit():
    prog = lower("""
        job int a(int x) { return x; }
        int helper() { return 1; }
        job void b(double d, bool f) { }
        master {
            job<void> j = remote b(1.0, true);
            print(state(j)); cancel(j); get(j);
            print(get(remote a(helper())));
        }""")
    nodes = list(walk(prog))
    starts = [n for n in nodes if isinstance(n, L.StartJob)]
    assert [(s.ordinal, s.name, s.arg_types) for s in starts] == [
        (2, "b", (T.DOUBLE, T.BOOL)), (1, "a", (T.INT,))]
    assert [type(n).__name__ for n in nodes
            if isinstance(n, (L.ReapJob, L.JobStateOf, L.CancelJob))] == [
        "JobStateOf", "CancelJob", "ReapJob", "ReapJob"]
    reaps = [n for n in nodes if isinstance(n, L.ReapJob)]
    assert [r.type for r in reaps] == [T.VOID, T.INT]
    assert not any(isinstance(n, S.Remote) for n in nodes)
    assert not any(isinstance(n, S.Call) and n.name in ("get", "state", "cancel")
                   for n in nodes)



# ---------------------------------------------------------------- cancel-checks

CANCEL_PROGRAM = """
    int shared(int n) { int s = 0; while (s < n) s += 1; return s; }
    int master_only(int n) { int s = 0; for (int i = 0; i < n; i += 1) s += i; return s; }
    int rec(int n) { if (n == 0) return 0; return rec(n - 1); }
    int master_rec(int n) { if (n == 0) return 0; return master_rec(n - 1); }
    job int work(int n) {
        int t = 0;
        for (int i = 0; i < n; i += 1) { if (i == 2) continue; t += rec(i); }
        while (t < 0) t += 1;
        return t + shared(n);
    }
    job int calm(int n) { return n; }
    master {
        int k = 0;
        while (k < 3) k += 1;
        print(get(remote work(5)) + master_only(k) + shared(2) + master_rec(3));
    }"""


def _checks_by_function(prog) -> dict[str, int]:
    return {getattr(d, "name", "master"):
            sum(isinstance(n, L.CancelCheck) for n in walk(d))
            for d in prog.decls if isinstance(d, (S.FuncDecl, S.MasterDecl))}


def test_lower_remote_places_cancel_checks_only_where_jobs_reach():
    prog = lower(CANCEL_PROGRAM)
    L.check_cancel_checks(prog)
    assert _checks_by_function(prog) == {
        "shared": 1,          # its loop: work calls it (the master too)
        "master_only": 0, "master_rec": 0,
        "rec": 1,             # entry: recursive, reached from work
        "work": 2,            # one per loop
        "calm": 0,
        "master": 0,
    }
    work = next(d for d in prog.decls if getattr(d, "name", "") == "work")
    loops = [n for n in walk(work) if isinstance(n, (S.For, S.While))]
    # A body that was not a block (`while (t < 0) t += 1;`) became one.
    assert all(isinstance(n.body, S.Block)
               and isinstance(n.body.stmts[0], L.CancelCheck) for n in loops)


def test_check_cancel_checks_rejects_a_missing_or_misplaced_check():
    import attrs
    prog = lower(CANCEL_PROGRAM)

    def strip(n):
        n = map_children(n, strip)
        if isinstance(n, S.Block):
            return attrs.evolve(n, stmts=tuple(
                s for s in n.stmts if not isinstance(s, L.CancelCheck)))
        return n

    with pytest.raises(AssertionError, match="lacks a cancel-check"):
        L.check_cancel_checks(strip(prog))
    master = next(d for d in prog.decls if isinstance(d, S.MasterDecl))
    p = master.pos
    extra = attrs.evolve(master, body=attrs.evolve(
        master.body, stmts=(L.CancelCheck(pos=p),) + master.body.stmts))
    bad = attrs.evolve(prog, decls=tuple(extra if d is master else d
                                         for d in prog.decls))
    with pytest.raises(AssertionError, match="out of place"):
        L.check_cancel_checks(bad)


def test_codegen_cancel_flag_only_in_functions_with_checks():
    module = compile_module(CANCEL_PROGRAM)
    fns = {f.name: str(f) for f in module.functions if f.blocks}
    flag_users = {name for name, text in fns.items()
                  if "@\"ms_cancel_flag_ptr\"()" in text}
    # rec takes the flag's address from its callers (a hidden parameter:
    # work passes its own); the master and the job wrappers poll nothing.
    assert flag_users == {"ms.fn.shared", "ms.fn.work"}
    for name in ("ms.fn.master_only", "ms.fn.master_rec", "ms.fn.calm"):
        assert "load volatile" not in fns[name], name
    assert fns["ms.fn.work"].count("load volatile") == 2
    assert fns["ms.fn.rec"].count("load volatile") == 1
    assert fns["ms.fn.rec"].startswith(
        'define internal i64 @"ms.fn.rec"(i64 %".1", i64 %"stack.limit", '
        'i32* %"cancel.flag")')
    # One lookup of the flag's address per function, in its entry block.
    assert fns["ms.fn.work"].count("ms_cancel_flag_ptr") == 1
    master = fns["ms_master_main"]
    assert "load volatile" not in master


@pytest.mark.parametrize("opt", [1, 2, 3])
def test_cancel_check_survives_optimization(opt):
    """An endless loop keeps its poll of the flag and its way out through
    ms_cancel_point at every level: LLVM may neither hoist the volatile
    load nor drop the loop."""
    module = compile_module("""
        job int spin(int x) { while (true) { x += 1; } }
        master { print(get(remote spin(1))); }""")
    ref, _ = backend.optimize(module, opt)
    text = str(ref.get_function("ms.jobrun.spin"))
    assert "load volatile i32" in text
    assert "call void @ms_cancel_point()" in text
    loop_blocks = [b for b in ref.get_function("ms.jobrun.spin").blocks
                   if "load volatile" in str(b)]
    assert len(loop_blocks) == 1 and "br " in str(loop_blocks[0])


LAYOUT_STRUCTS = """
struct E {};
struct A { char c; int i; bool b; };
struct B { bool x; struct A a; char y; jobstate s; };
struct C { jobstate s; char c; };
struct D { struct E e; char c; struct C cs; vector<int> v; job<int> j; };
struct F { struct E e; };
"""
LAYOUT_C = r"""
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
struct E {};
struct A { uint8_t c; int64_t i; uint8_t b; };
struct B { uint8_t x; struct A a; uint8_t y; int32_t s; };
struct C { int32_t s; uint8_t c; };
struct D { struct E e; uint8_t c; struct C cs; void *v; void *j; };
struct F { struct E e; };
#define S(T) printf("%s %zu %zu\n", #T, sizeof(struct T), _Alignof(struct T))
#define O(T, f) printf("%s.%s %zu\n", #T, #f, offsetof(struct T, f))
int main(void) {
    S(E); S(A); S(B); S(C); S(D); S(F);
    O(A, c); O(A, i); O(A, b); O(B, x); O(B, a); O(B, y); O(B, s);
    O(C, s); O(C, c); O(D, e); O(D, c); O(D, cs); O(D, v); O(D, j);
    O(F, e);
    return 0;
}
"""


def test_struct_layout_matches_c_and_llvm(tmp_path):
    """The offsets and sizes in ms_type descriptors are C's, and LLVM lays
    out the struct types codegen uses the same way."""
    from compiler.codegen import llvm_types as CT
    from compiler.ir.vectors import struct_table
    prog, _ = run_pipeline(Source("prog.ms", LAYOUT_STRUCTS + "master { }"),
                           stop_after="typecheck")
    types = CT.Types(struct_table(prog))
    ours = []
    for name in "EABCDF":
        size, align, offsets = types.layout(T.StructType(name))
        ours.append(f"{name} {size} {align}")
    fields = {"A": "cib", "B": "xays", "C": "sc", "D": ["e", "c", "cs", "v", "j"],
              "F": ["e"]}
    for name, names in fields.items():
        offsets = types.layout(T.StructType(name))[2]
        ours.extend(f"{name}.{f} {o}" for f, o in zip(names, offsets))
    (tmp_path / "l.c").write_text(LAYOUT_C)
    subprocess.run(["cc", "-o", str(tmp_path / "l"), str(tmp_path / "l.c")],
                   check=True)
    theirs = subprocess.run([str(tmp_path / "l")], capture_output=True,
                            text=True, check=True).stdout.split("\n")
    order = {line.split()[0]: line for line in theirs if line}
    assert [order[line.split()[0]] for line in ours] == ours
    # LLVM's view of the same types under the host data layout.
    llvm.initialize_native_target()
    td = llvm.create_target_data(str(backend._target_machine(2).target_data))
    module = llvm.parse_assembly(
        "".join(f"@g{n} = global {types.mem_type(T.StructType(n))} "
                "zeroinitializer\n" for n in "EABCDF"))
    for n in "EABCDF":
        g = module.get_global_variable(f"g{n}")
        assert td.get_abi_size(g.global_value_type) == \
            types.layout(T.StructType(n))[0]


def test_one_descriptor_per_type_and_immortal_literals():
    module = compile_module("""
        struct P { string name; vector<double> xs; bool ok; };
        master {
            vector<struct P> ps; struct P p; p->name = "hi";
            ps :: p; ps :: p; print(ps[1]->name); print(len(ps[0]->xs));
            print("hi"); string e = "";
            print(ps == ps);
        }""")
    text = str(module)
    assert text.count('@"ms.type.vector<struct.P>" = private') == 1
    assert text.count('@"ms.type.struct.P" = private') == 1
    assert text.count('@"ms.type.string" = private') == 1
    # The literal "hi" once, immortal: {1 << 62, 2, 2, "hi"}.
    assert text.count('c"hi"') == 1
    assert "i64 4611686018427387904, i64 2, i64 2, [2 x i8] c\"hi\"" in text
    # kind struct (7), size 24, has_refs, 3 fields
    assert "i32 7, i32 24, i32 1, i32 3" in text


# ---------------------------------------------------------------- backend

def test_missing_runtime_dir_is_a_backend_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_RUNTIME_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(backend.BackendError, match="MS_RUNTIME_DIR"):
        backend.runtime_dir()


def test_failed_link_leaves_no_executable(tmp_path):
    (tmp_path / "p.ms").write_text("master { print(1); }\n")
    libs = tmp_path / "libs"
    libs.mkdir()
    for lib in backend.LIBS:                     # not archives: link fails
        (libs / lib).write_text("garbage\n")
    env = {**os.environ, "MS_RUNTIME_DIR": str(libs),
           "PYTHONPATH": str(REPO)}
    import sys
    result = subprocess.run([sys.executable, "-m", "compiler", "p.ms"],
                            cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("msc: error: linking ")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libs", "p.ms"]


def test_emit_llvm_and_object(tmp_path):
    (tmp_path / "p.ms").write_text("master { print(1 + 2); }\n")
    for emit, suffix in (("llvm", ".ll"), ("obj", ".o")):
        result = msc("p.ms", f"--emit={emit}", "-O3", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"p{suffix}").stat().st_size > 0
    assert "target triple" in (tmp_path / "p.ll").read_text()


def test_packaged_runtime_is_built_into_the_cache(tmp_path, monkeypatch):
    src = REPO / "runtime" / "c"
    if not (src / "Makefile").exists():
        pytest.fail("runtime/c/Makefile is missing")
    import shutil
    packaged = tmp_path / "runtime_src"
    shutil.copytree(src, packaged)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built = backend._build_cached(packaged)
    assert backend._has_libs(built)
    assert built.parent == tmp_path / "cache" / "ms-lang"
    assert backend._build_cached(packaged) == built       # cached


# ---------------------------------------------------------------- execution

def build_and_run(tmp_path, source: str, name="prog"):
    ms = write_program(tmp_path, name, textwrap.dedent(source).lstrip())
    return run_master(build_program(ms, tmp_path / name), cwd=tmp_path,
                      timeout=RUN_TIMEOUT)


def runtime_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": runtime error: " in line]


def expect_output(tmp_path, source, expected_lines):
    run = build_and_run(tmp_path, source)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(x) for x in expected_lines]


MIN = -9223372036854775808
MAX = 9223372036854775807


@pytest.mark.usefixtures("runtime_built")
class TestExecution:
    def test_wrapping_arithmetic(self, tmp_path):
        expect_output(tmp_path, """
            master {
                int max = 9223372036854775807;
                int min = -max - 1;
                print(max + 1); print(min - 1); print(max * 2);
                print(-min); print(min / -1); print(min % -1);
                print(abs(min)); print(abs(-5)); print(min(min, max));
                print(max(3, -3));
                int m = min; m /= -1; print(m);
            }""", [MIN, MAX, -2, MIN, MIN, 0, MIN, 5, MIN, 3, MIN])

    def test_division_signs(self, tmp_path):
        expect_output(tmp_path, """
            master {
                print(7 / 2); print(-7 / 2); print(7 / -2); print(-7 / -2);
                print(7 % 3); print(-7 % 3); print(7 % -3); print(-7 % -3);
            }""", [3, -3, -3, 3, 1, -1, 1, -1])

    @pytest.mark.parametrize("stmt,col", [
        ("print(a / b);", 13), ("print(a % b);", 13),
        ("a /= b;", 7), ("a %= b;", 7)])
    def test_division_by_zero(self, tmp_path, stmt, col):
        run = build_and_run(tmp_path, f"""
            master {{
                int a = 1; int b = 0;
                print(2);
                {stmt}
                print(3);
            }}""")
        assert run.returncode == 1
        assert run.stdout == "2\n"
        assert runtime_errors(run.stderr) == [
            f"prog.ms:4:{col}: runtime error: division by zero"]

    def test_doubles(self, tmp_path):
        expect_output(tmp_path, """
            master {
                print(1.0 / 0.0); print(-1.0 / 0.0); print(0.0 / 0.0);
                print(0.1 + 0.2); print(-0.0); print(1e21); print(100.0);
                print(0.0 / 0.0 == 0.0 / 0.0); print(0.0 / 0.0 != 0.0 / 0.0);
                print(1.0 < 0.0 / 0.0); print(sqrt(-1.0)); print(log(0.0));
                print(sqrt(2.0)); print(pow(2.0, 10.0)); print(atan2(1.0, 1.0));
                print(floor(-1.5)); print(ceil(-1.5)); print(abs(-2.5));
                print(min(0.0 / 0.0, 1.0)); print(max(2.0, 0.0 / 0.0));
            }""", ["inf", "-inf", "nan", "0.30000000000000004", "-0",
                   "1e+21", "100", "false", "true", "false", "nan", "-inf",
                   "1.4142135623730951", "1024", "0.7853981633974483",
                   "-2", "-1", "2.5", "1", "2"])

    def test_conversions(self, tmp_path):
        expect_output(tmp_path, """
            master {
                print(int(3.9)); print(int(-3.9)); print(int(0.0 / 0.0));
                print(int(1e300)); print(int(-1e300)); print(int(1.0 / 0.0));
                print(int('\\xff')); print(int(true)); print(double(-7));
                print(char(321)); print(int(char(-1)));
                print('a' < '\\xe9');
            }""", [3, -3, 0, MAX, MIN, MAX, 255, 1, -7, "A", 255, "true"])

    def test_short_circuit_and_order(self, tmp_path):
        expect_output(tmp_path, """
            bool t(int n) { print(n); return true; }
            bool f(int n) { print(n); return false; }
            int v(int n) { print(n); return n; }
            master {
                print(f(1) && t(2));
                print(t(3) || f(4));
                print(v(5) - v(6));
                int x = 10;
                x -= v(7);
                print(x);
            }""", [1, "false", 3, "true", 5, 6, -1, 7, 3])

    def test_recursion_and_zero_values(self, tmp_path):
        expect_output(tmp_path, """
            int fib(int n) { if (n < 2) return n; return fib(n - 1) + fib(n - 2); }
            int depth(int n) { if (n == 0) return 0; return 1 + depth(n - 1); }
            master {
                int i; double d; bool b; char c; jobstate s; job<int> j;
                print(i); print(d); print(b); print(int(c)); print(s);
                print(j == j);
                print(fib(20)); print(depth(100000));
            }""", [0, 0, "false", 0, "running", "true", 6765, 100000])

    def test_deep_recursion_is_a_stack_overflow(self, tmp_path):
        run = build_and_run(tmp_path, """
            int down(int n) {
                return down(n + 1) + 1;
            }
            master {
                print(1);
                print(down(0));
            }""")
        assert run.returncode == 1
        assert run.stdout == "1\n"
        assert runtime_errors(run.stderr) == [
            "prog.ms:2:12: runtime error: stack overflow"]

    def test_remote_jobs(self, tmp_path):
        expect_output(tmp_path, """
            job int add(int a, int b) { return a + b; }
            job double scale(double x, int k) { return x * double(k); }
            job bool both(bool a, bool b) { return a && b; }
            job char next(char c) { return char(int(c) + 1); }
            job void nothing(int x) { }
            master {
                job<int> j = remote add(2, -9223372036854775807);
                print(get(j));
                print(get(j));
                print(get(remote scale(1.5, 4)));
                print(get(remote both(true, true)));
                print(get(remote next('\\xff')) == '\\0');
                job<void> n = remote nothing(1);
                get(n);
                print(state(n));
                job<int> k = j;
                print(k == j); print(k != remote add(1, 1));
            }""", [-9223372036854775805, -9223372036854775805, 6, "true",
                   "true", "finished", "true", "true"])

    def test_failed_job(self, tmp_path):
        run = build_and_run(tmp_path, """
            job int divide(int a, int b) {
                return a / b;
            }
            master {
                job<int> ok = remote divide(10, 2);
                job<int> bad = remote divide(1, 0);
                print(get(ok));
                print(get(bad));
                print(0);
            }""")
        assert run.returncode == 1
        assert run.stdout == "5\n"
        assert runtime_errors(run.stderr) == [
            "prog.ms:8:11: runtime error: job 'divide' failed: "
            "prog.ms:2:14: division by zero"]

    def test_stack_overflow_in_a_job_fails_only_that_job(self, tmp_path):
        run = build_and_run(tmp_path, """
            int down(int n) { return down(n + 1) + 1; }
            job int deep(int n) { return down(n); }
            job int ok(int n) { return n * 2; }
            master {
                job<int> d = remote deep(0);
                print(get(remote ok(21)));
                print(get(d));
            }""")
        assert run.returncode == 1
        assert run.stdout == "42\n"
        assert runtime_errors(run.stderr) == [
            "prog.ms:7:11: runtime error: job 'deep' failed: "
            "prog.ms:1:26: stack overflow"]

    @pytest.mark.parametrize("opt", ["-O0", "-O3"])
    def test_optimization_levels_agree(self, tmp_path, opt):
        ms = write_program(tmp_path, "p", textwrap.dedent("""
            int collatz(int n) { if (n == 1) return 0; if (n % 2 == 0) return 1 + collatz(n / 2); return 1 + collatz(3 * n + 1); }
            master { int s = 0; for (int i = 1; i < 1000; i += 1) { s += collatz(i); } print(s); }
            """))
        run = run_master(build_program(ms, tmp_path / "p", opt), cwd=tmp_path,
                         timeout=RUN_TIMEOUT)
        assert (run.returncode, run.stdout) == (0, "59431\n")


def test_bit_operation_precedence_agrees_with_c(tmp_path):
    """tests/golden/run/bitops-precedence.ms prints expressions whose value
    depends on C's precedence (test_golden checks the compiled program
    against its .out); compiled as C with the same text, they print that
    .out too, so M/s groups them as C does."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler (cc) on PATH")
    ms = REPO / "tests" / "golden" / "run" / "bitops-precedence.ms"
    text = ms.read_text()
    prog, _ = run_pipeline(Source(ms.name, text), stop_after="typecheck")
    types = [c.args[0].type for c in walk(prog)
             if isinstance(c, S.Call) and c.name == "print"]
    exprs = re.findall(r"^\s*print\((.*)\);$", text, re.M)
    assert len(exprs) == len(types) > 10
    lines = ["#include <stdint.h>", "#include <stdio.h>",
             "int main(void) {", "    int64_t x = 6;"]
    for e, t in zip(exprs, types):
        if t == T.BOOL:
            lines.append(f'    puts(({e}) ? "true" : "false");')
        else:
            assert t == T.INT, e
            lines.append(f'    printf("%lld\\n", (long long)({e}));')
    lines += ["    return 0;", "}"]
    assert "int x = 6;" in text
    (tmp_path / "prec.c").write_text("\n".join(lines) + "\n")
    # -Wno-parentheses: the mixed precedence is the point.
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-Wno-parentheses",
                    "-o", str(tmp_path / "prec"), str(tmp_path / "prec.c")],
                   check=True, timeout=60)
    out = subprocess.run([str(tmp_path / "prec")], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    assert out == ms.with_suffix(".out").read_text()


def test_huge_function_calls_its_helpers_instead_of_inlining_them():
    # Inlining a fast path into each of thousands of statements makes LLVM
    # quadratic (docs/architecture.md, "Compile time").
    from compiler.codegen.values import HUGE_FUNCTION
    def master_text(n):
        return "master { vector<int> v;\n" + "v :: 1;\n" * n + "print(len(v)); }\n"
    small, _ = run_pipeline(Source("s.ms", master_text(HUGE_FUNCTION // 2)))
    assert " noinline" not in str(small.get_global("ms_master_main"))
    huge, _ = run_pipeline(Source("h.ms", master_text(HUGE_FUNCTION + 1)))
    text = str(huge.get_global("ms_master_main"))
    assert text.count("noinline") >= text.count("@\"ms.vec.push\"") > HUGE_FUNCTION
    ref, _ = backend.optimize(huge, 2)
    assert "ms.vec.push" in str(ref)   # still a call after -O2
