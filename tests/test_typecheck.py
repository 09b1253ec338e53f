"""Unit tests of resolve-structs and typecheck, through the real pipeline.

Golden fail-*.ms programs in tests/golden/typecheck/ cover one rejected
program per rule with the full diagnostic; these tests add what golden files
do poorly: programs that must be accepted, the types given to expressions,
the renaming of shadowed variables, and exact error positions.
"""
from __future__ import annotations

import textwrap

import pytest

from compiler.errors import CompileError
from compiler.ir import types as T
from compiler.ir.surface import (Call, Expr, FuncDecl, MasterDecl, Name,
                                 VarDecl)
from compiler.ir.walk import walk
from compiler.pipeline import Source, run_pipeline


def typecheck(src: str):
    prog, _ = run_pipeline(Source("t.ms", textwrap.dedent(src)),
                           stop_after="typecheck")
    return prog


def error(src: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        typecheck(src)
    return info.value


def body(prog, name="master"):
    for d in prog.decls:
        if name == "master" and isinstance(d, MasterDecl):
            return d.body
        if isinstance(d, FuncDecl) and d.name == name:
            return d.body
    raise KeyError(name)


def decl_names(node):
    return [n.name for n in walk(node) if isinstance(n, VarDecl)]


def name_refs(node):
    return [(n.name, n.type) for n in walk(node) if isinstance(n, Name)]


def calls(node, name):
    return [n for n in walk(node) if isinstance(n, Call) and n.name == name]


# ------------------------------------------------------------ accepted programs

ACCEPTED = {
    "string-ops": """
        master {
            string s = "ab";
            s += "c";
            s :: 'd';
            print(s < "b" && s != "x" && s + s == "abcdabcd");
            print(len(s) + int(s[0]));
        }""",
    "vector-append-chains": """
        struct Bag { vector<int> xs; };
        master {
            vector<int> v;
            (v :: 1) :: 2;
            v :: 3 :: 4;
            vector<int> w = v :: 5;
            vector<vector<int>> vv;
            vv :: w;
            vv[0] :: 6;
            struct Bag b;
            b->xs :: 7;
            vector<struct Bag> bags;
            bags :: b;
            bags[0]->xs :: 8;
            bags[0]->xs[0] = 9;
            bags[0]->xs[0] += 1;
            v = v + w;
        }""",
    "locals-named-like-functions": """
        int f(int x) { return x; }
        master {
            int f = 2;
            int print = f(f);
            print(print);
            double sqrt = sqrt(2.0);
            print(sqrt);
        }""",
    "recursive-struct-through-vector": """
        struct Tree { int v; vector<struct Tree> kids; job<struct Tree> later; };
        struct E {};
        job struct E empty(struct E e) { return e; }
        master {
            struct Tree t;
            t->kids :: t;
            print(len(t->kids[0]->kids));
        }""",
    "returns-on-every-path": """
        int a(int n) { if (n > 0) return 1; else return 2; }
        int b(int n) { while (true) { n += 1; } }
        int c(int n) { for (;;) { for (;;) { break; } n += 1; } }
        int d(int n) { if (n > 0) { return 1; } else if (n < 0) { return -1; } else { return 0; } }
        int e(int n) { return n; print(n); }
        int f(int n) { while (true) { while (n > 0) { break; } if (n > 3) return n; } }
        int g(int n) { { return n; } }
        int h(int n) { if (n > 0) return 1; else while (true) {} }
        void v(int n) { if (n > 0) return; print(n); }
        master {
            print(a(1) + b(1) + c(1) + d(1) + e(1) + f(1) + g(1) + h(1));
            v(1);
            return;
        }""",
    "jobs-and-handles": """
        struct P { int x; vector<double> ys; };
        job void noop() { }
        job struct P make(int x, vector<struct P> ps, string name, bool b, char c) {
            struct P p;
            p->x = x;
            return p;
        }
        int helper() { return 1; }
        job int uses_job_locally(int n) { return helper() + noop_count(n); }
        int noop_count(int n) { return n; }
        master {
            vector<struct P> ps;
            job<struct P> j = remote make(1, ps, "n", true, 'c');
            job<struct P> k = j;
            job<void> w = remote noop();
            get(w);
            cancel(w);
            print(j == k);
            print(state(j) == finished);
            print(str(state(w)));
            struct P p = get(j);
            print(p->x + get(j)->x + uses_job_locally(2));
            vector<job<int>> handles;
            handles :: remote uses_job_locally(3);
        }""",
    "builtins": """
        master {
            print(sqrt(2.0) + exp(1.0) + log(1.0) + sin(0.0) + cos(0.0) + tan(0.0));
            print(floor(1.5) + ceil(1.5) + atan2(1.0, 2.0) + pow(2.0, 3.0));
            print(abs(-1) + min(1, 2) + max(3, 4));
            print(abs(-1.0) + min(1.0, 2.0) + max(3.0, 4.0));
            print(int(1.5) + int('a') + int(true) + int(3));
            print(double(1) + double(2.5));
            print(char(65));
            print(char('a'));
            print(str(1) + str(1.5) + str(true) + str('c') + str(running));
            print(running);
            print('c');
            print(true);
        }""",
    "empty-and-expression-statements": """
        int f() { return 1; }
        master {
            1 + 2;
            f();
            f() == 1;
            for (;;) { break; }
            int i;
            for (i = 0; i < 2; i += 1) {}
        }""",
    "separate-namespaces": """
        struct f { int f; };
        int f(struct f f) { return f->f; }
        int g() { while ((true)) { } }
        master {
            struct f f;
            print(f(f) + g());
        }""",
    "equality-of-every-type": """
        struct P { int x; };
        master {
            struct P a; struct P b;
            vector<struct P> va; vector<struct P> vb;
            job<int> j; job<int> k;
            jobstate s = failed;
            print(a == b && va != vb && j == k && s != cancelled && 1.0 == 2.0 && 'a' != 'b' && true == false);
        }""",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name):
    prog = typecheck(ACCEPTED[name])
    for n in walk(prog):
        if isinstance(n, Expr):
            assert n.type is not None


def test_empty_statement_and_expression_as_for_init_and_step():
    typecheck("""
        int f() { return 1; }
        master { ; for (f(); false; f()) ; }""")


def test_expression_types():
    prog = typecheck("""
        job void w() { }
        master {
            job<void> j = remote w();
            get(j);
            print(abs(1.5));
            print(str(1));
            print(len("abc"));
            print(min(1, 2));
        }""")
    m = body(prog)
    assert calls(m, "get")[0].type == T.VOID
    assert calls(m, "print")[0].type == T.VOID
    assert calls(m, "abs")[0].type == T.DOUBLE
    assert calls(m, "str")[0].type == T.STRING
    assert calls(m, "len")[0].type == T.INT
    assert calls(m, "min")[0].type == T.INT
    remote = [n for n in walk(m) if type(n).__name__ == "Remote"][0]
    assert remote.type == T.JobType(T.VOID)


def test_bit_operations_are_ints():
    prog = typecheck("""
        master {
            int x = 6;
            print(~x & 3 | x ^ 1 << 2 >> 1);
            print((x & 1) == 0);
            x <<= 2; x >>= 1; x &= 7; x |= 8; x ^= 1;
        }""")
    m = body(prog)
    ops = [n for n in walk(m) if type(n).__name__ in ("Binary", "Unary")]
    assert {n.op: n.type for n in ops} == {
        "~": T.INT, "&": T.INT, "|": T.INT, "^": T.INT, "<<": T.INT,
        ">>": T.INT, "==": T.BOOL}


def test_string_is_vector_of_char():
    prog = typecheck("""
        master {
            string s = "x";
            vector<char> v = s;
            print(v == "x");
        }""")
    refs = name_refs(body(prog))
    assert refs[0] == ("s", T.VectorType(T.CHAR))


# ------------------------------------------------------------ renaming

def test_shadowing_renames_uses():
    prog = typecheck("""
        master {
            int x = 1;
            {
                double x = 2.0;
                print(x);
                {
                    bool x = true;
                    print(x);
                }
                print(x);
            }
            print(x);
        }""")
    m = body(prog)
    assert decl_names(m) == ["x", "x.1", "x.2"]
    assert name_refs(m) == [("x.1", T.DOUBLE), ("x.2", T.BOOL),
                            ("x.1", T.DOUBLE), ("x", T.INT)]


def test_sibling_blocks_get_unique_names():
    prog = typecheck("""
        master {
            { int a = 1; print(a); }
            { int a = 2; print(a); }
            for (int a = 0; a < 1; a += 1) { int a = 5; print(a); }
        }""")
    m = body(prog)
    assert decl_names(m) == ["a", "a.1", "a.2", "a.3"]
    assert [n for n, _ in name_refs(m)] == ["a", "a.1", "a.2", "a.2", "a.3"]


def test_initializer_reads_outer_variable():
    prog = typecheck("""
        master {
            int x = 1;
            {
                int x = x + 1;
                print(x);
            }
        }""")
    m = body(prog)
    assert decl_names(m) == ["x", "x.1"]
    assert [n for n, _ in name_refs(m)] == ["x", "x.1"]


def test_parameters_keep_their_names_and_nested_blocks_shadow_them():
    prog = typecheck("""
        int f(int n, int m) {
            if (n > 0) {
                int n = 2;
                return n + m;
            }
            return n;
        }
        master { print(f(1, 2)); }""")
    fn = [d for d in prog.decls if isinstance(d, FuncDecl)][0]
    assert [p.name for p in fn.params] == ["n", "m"]
    assert [n for n, _ in name_refs(fn.body)] == ["n", "n.1", "m", "n"]


def test_functions_have_separate_name_spaces_for_locals():
    prog = typecheck("""
        int f() { int x = 1; return x; }
        master { int x = 2; print(x + f()); }""")
    assert decl_names(body(prog, "f")) == ["x"]
    assert decl_names(body(prog)) == ["x"]


def test_typecheck_is_pure():
    src = Source("t.ms", "master { int x = 1; { int x = 2; print(x); } }")
    surface, _ = run_pipeline(src, stop_after="resolve-structs")
    from compiler.passes import typecheck as tc
    before = repr(surface)
    first = tc.run(surface)
    assert repr(surface) == before
    assert tc.run(surface) == first


# ------------------------------------------------------------ errors and positions

ERRORS = [
    # (program, message, line, col)
    ("master { int a = 1; double b = 2.0; print(a + b); }",
     "cannot add int and double", 1, 45),
    ("master { print(1 < 2.0); }", "cannot compare int and double", 1, 18),
    ("master { int x = 1.5; }",
     "cannot initialize variable 'x' of type int with double", 1, 18),
    ("master { print(y); }", "undeclared variable 'y'", 1, 16),
    ("master { int x = x + 1; }", "undeclared variable 'x'", 1, 18),
    ("int f(int a, int b) { return a; }\nmaster { print(f(1, 2.0)); }",
     "argument 'b' of 'f' must be int, not double", 2, 21),
    ("int f(int a) { return a; }\nmaster { print(f()); }",
     "'f' takes 1 argument, but 0 were given", 2, 16),
    ("master { print(sqrt(4)); }", "'sqrt' takes a double, not int", 1, 21),
    ("master { print(pow(2.0, 3)); }",
     "argument 2 of 'pow' must be a double, not int", 1, 25),
    ("master { print(1, 2); }", "'print' takes 1 argument, but 2 were given", 1, 10),
    ("master { vector<int> v; v :: 1.5; }", "cannot append double to vector<int>", 1, 27),
    ("master { break; }", "'break' outside a loop", 1, 10),
    ("master { return 1; }", "the master block cannot return a value", 1, 17),
    ("int f() { return; }\nmaster { }", "function 'f' must return a value of type int", 1, 11),
    ("void f() { return 1; }\nmaster { }", "void function 'f' cannot return a value", 1, 19),
    ("int f() { }\nmaster { }", "missing return: function 'f' returns int, but the end of its body is reachable", 1, 5),
    ("int f() { while (!false) { } }\nmaster { }", "the end of its body is reachable", 1, 5),
    ("int f() { for (; true; ) { } }\nmaster { }", "the end of its body is reachable", 1, 5),
    ("int f() { while (true) { if (true) { break; } } }\nmaster { }",
     "the end of its body is reachable", 1, 5),
    ("int f() { if (true) return 1; }\nmaster { }", "the end of its body is reachable", 1, 5),
    ("master { int f = 1; f(2); }", "unknown function 'f'", 1, 21),
    ("int g() { return 1; }\nmaster { int x = g; }",
     "'g' is a function, not a variable", 2, 18),
    ("job void w() { }\nmaster { job<void> j = remote w(); int x = get(j); }",
     "get of a job<void> has no value", 2, 44),
    ("int sq(int n) { return n; }\nmaster { remote sq(1); }",
     "'sq' is not a job", 2, 10),
    ("master { remote nope(1); }", "unknown job 'nope'", 1, 10),
    ("master { int x; x :: 1; }", "cannot append to int (not a vector)", 1, 19),
    ("int f() { return 1; }\nmaster { f() = 2; }",
     "cannot assign to the result of a call", 2, 10),
    ("master { vector<int> v; vector<int> w; (v :: 1) = w; }",
     "cannot assign to the result of '::'", 1, 43),
    ("master { vector<int> v; (v :: 1)[0] = 2; }",
     "cannot assign to an element of the result of '::'", 1, 33),
    ("master { int n = 1; if (n) { } }",
     "the condition of 'if' must be bool, not int", 1, 25),
    ("master { int a; double a; }",
     "'a' is already declared in this block (at line 1)", 1, 24),
    ("int f(int n) { int n = 1; return n; }\nmaster { }",
     "'n' is already declared as a parameter of function 'f'", 1, 20),
    ("int f(int n, int n) { return n; }\nmaster { }",
     "duplicate parameter 'n' of function 'f'", 1, 18),
    ("master { }\nmaster { }", "a program has exactly one master block", 2, 1),
    ("int f() { return 1; }", "the program has no master block", 1, 1),
    ("int abs(int x) { return x; }\nmaster { }",
     "cannot declare function 'abs': that is the name of a builtin", 1, 5),
    ("struct A { struct B b; };\nstruct B { struct A a; };\nmaster { }",
     "struct A contains itself by value (A -> B -> A)", 1, 21),
    ("struct A { int x; int x; };\nmaster { }", "duplicate field 'x' in struct A", 1, 23),
    ("master { vector<struct Z> v; }",
     "unknown struct 'Z' in the type of variable 'v'", 1, 27),
    ("master { void v; }", "variable 'v' cannot have type void", 1, 15),
    ("job int w(job<int> j) { return 1; }\nmaster { }",
     "parameter 'j' of job 'w' cannot be sent to a slave: job<int> is not serializable",
     1, 20),
    ("job int leaf() { return 1; }\n"
     "int helper() { job<int> j = remote leaf(); return get(j); }\n"
     "int step() { return helper(); }\n"
     "job int work() { return step(); }\nmaster { }",
     "remote call in 'helper', which job 'work' can reach (work -> step -> helper)",
     2, 29),
    # bit operations (SPEC 12.4): ints only
    ("master { print(1.5 ^ 2.5); }", "'^' takes two ints, not double and double", 1, 20),
    ("master { print(1 >> 2.0); }", "'>>' takes two ints, not int and double", 1, 18),
    ("master { print('a' | 'b'); }", "'|' takes two ints, not char and char", 1, 20),
    ("master { print(true & false); }",
     "'&' takes two ints, not bool and bool (on bools, use '&&')", 1, 21),
    ("master { print(~1.5); }", "'~' takes an int, not double", 1, 16),
    ("master { print(~\"a\"); }", "'~' takes an int, not string", 1, 16),
    ("master { int x = 1; if (x & 1 != 0) { } }",
     "'&' takes two ints, not int and bool ('!=' binds tighter than '&': "
     "write (a & b) != c to compare the result)", 1, 27),
    ("master { int x = 1; print(x < 1 | 2); }",
     "'|' takes two ints, not bool and int ('<' binds tighter than '|'", 1, 33),
    ("master { bool b = true; b |= false; }",
     "'|' takes two ints, not bool and bool (on bools, use '||')", 1, 27),
    ("master { int x = 1; x <<= 1.0; }", "'<<' takes two ints, not int and double", 1, 23),
    ("master { vector<int> v; v &= v; }",
     "'&' takes two ints, not vector<int> and vector<int>", 1, 27),
]


@pytest.mark.parametrize("src,message,line,col", ERRORS,
                         ids=[e[1][:40] for e in ERRORS])
def test_error(src, message, line, col):
    err = error(src)
    assert message in err.message
    assert (err.pos.line, err.pos.col) == (line, col), err.message
