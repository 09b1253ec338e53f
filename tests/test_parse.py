"""The parse pass: grammar, AST shapes, positions, lexical and syntax errors.

Expressions are compared structurally (positions are ignored by equality)
against nodes built by hand; positions are checked separately.
"""
import functools
import sys
import time

import attrs
import pytest

from compiler.errors import CompileError, Pos
from compiler.ir import surface as S
from compiler.ir import types as T
from compiler.ir.walk import walk
from compiler.passes import parse
from compiler.pipeline import Source


class _AnyPos:
    """`A.Name(name="x")` builds `S.Name` with a dummy position: equality
    ignores positions, so these are the expected trees."""

    def __getattr__(self, name):
        return functools.partial(getattr(S, name), pos=Pos("t.ms", 0, 0))


A = _AnyPos()


def parse_src(text, path="t.ms"):
    return parse.run(Source(path, text))


def master_stmts(body):
    prog = parse_src("master {\n" + body + "\n}")
    (m,) = prog.decls
    assert isinstance(m, S.MasterDecl)
    return m.body.stmts


def expr(text):
    (s,) = master_stmts(text + ";")
    assert isinstance(s, S.ExprStmt)
    return s.expr


def error(text):
    with pytest.raises(CompileError) as info:
        parse_src(text)
    e = info.value
    return e.pos.line, e.pos.col, e.message


def master_error(body):
    """An error in `master {\\n BODY \\n}`: (line within body, col, msg)."""
    line, col, msg = error("master {\n" + body + "\n}")
    return line - 1, col, msg


# Short constructors for expected trees.
def N(name):
    return A.Name(name=name)


def I(v):
    return A.IntLit(value=v)


def B(op, left, right):
    return A.Binary(op=op, left=left, right=right)


def U(op, operand):
    return A.Unary(op=op, operand=operand)


def C(name, *args):
    return A.Call(name=name, args=tuple(args))


# ---------------------------------------------------------------- precedence

@pytest.mark.parametrize("text, tree", [
    ("1 + 2 * 3", B("+", I(1), B("*", I(2), I(3)))),
    ("1 * 2 + 3", B("+", B("*", I(1), I(2)), I(3))),
    ("1 - 2 - 3", B("-", B("-", I(1), I(2)), I(3))),
    ("8 / 4 / 2", B("/", B("/", I(8), I(4)), I(2))),
    ("7 % 3 * 2", B("*", B("%", I(7), I(3)), I(2))),
    ("(1 + 2) * 3", B("*", B("+", I(1), I(2)), I(3))),
    ("a < b == c > d", B("==", B("<", N("a"), N("b")), B(">", N("c"), N("d")))),
    ("a <= b != c >= d",
     B("!=", B("<=", N("a"), N("b")), B(">=", N("c"), N("d")))),
    ("a + 1 < b * 2", B("<", B("+", N("a"), I(1)), B("*", N("b"), I(2)))),
    ("a || b && c", B("||", N("a"), B("&&", N("b"), N("c")))),
    ("a && b || c", B("||", B("&&", N("a"), N("b")), N("c"))),
    ("a == b && c != d",
     B("&&", B("==", N("a"), N("b")), B("!=", N("c"), N("d")))),
    ("a || b || c", B("||", B("||", N("a"), N("b")), N("c"))),
    ("-a * b", B("*", U("-", N("a")), N("b"))),
    ("!a && b", B("&&", U("!", N("a")), N("b"))),
    ("- -a", U("-", U("-", N("a")))),
    ("--a", U("-", U("-", N("a")))),
    ("!!a", U("!", U("!", N("a")))),
    ("-a[0]", U("-", A.Index(base=N("a"), index=I(0)))),
    ("-s->f", U("-", A.FieldAccess(base=N("s"), name="f"))),
    ("-f(1)", U("-", C("f", I(1)))),
    ("a-1", B("-", N("a"), I(1))),
    ("a - -1", B("-", N("a"), U("-", I(1)))),
    ("a<-1", B("<", N("a"), U("-", I(1)))),
    # bit operations, SPEC 12.4: C's levels
    ("a + b << c", B("<<", B("+", N("a"), N("b")), N("c"))),
    ("a << b + c", B("<<", N("a"), B("+", N("b"), N("c")))),
    ("a << b < c", B("<", B("<<", N("a"), N("b")), N("c"))),
    ("a < b >> c", B("<", N("a"), B(">>", N("b"), N("c")))),
    ("a << b >> c", B(">>", B("<<", N("a"), N("b")), N("c"))),
    ("a & b == c", B("&", N("a"), B("==", N("b"), N("c")))),
    ("a == b & c", B("&", B("==", N("a"), N("b")), N("c"))),
    ("a & b ^ c", B("^", B("&", N("a"), N("b")), N("c"))),
    ("a ^ b & c", B("^", N("a"), B("&", N("b"), N("c")))),
    ("a ^ b | c", B("|", B("^", N("a"), N("b")), N("c"))),
    ("a | b ^ c", B("|", N("a"), B("^", N("b"), N("c")))),
    ("a | b && c", B("&&", B("|", N("a"), N("b")), N("c"))),
    ("a && b | c", B("&&", N("a"), B("|", N("b"), N("c")))),
    ("a || b & c", B("||", N("a"), B("&", N("b"), N("c")))),
    ("a & b & c", B("&", B("&", N("a"), N("b")), N("c"))),
    ("a >> b >> c", B(">>", B(">>", N("a"), N("b")), N("c"))),
    ("~a & b", B("&", U("~", N("a")), N("b"))),
    ("~~a", U("~", U("~", N("a")))),
    ("~-a", U("~", U("-", N("a")))),
    ("-~a", U("-", U("~", N("a")))),
    ("!~a", U("!", U("~", N("a")))),
    ("~a[0]", U("~", A.Index(base=N("a"), index=I(0)))),
    ("a>>-1", B(">>", N("a"), U("-", I(1)))),
    ("a<<~1", B("<<", N("a"), U("~", I(1)))),
    ("a>=b", B(">=", N("a"), N("b"))),
    ("a&&b&c", B("&&", N("a"), B("&", N("b"), N("c")))),
    ("a||b|c", B("||", N("a"), B("|", N("b"), N("c")))),
    ("v :: a | b", A.Append(target=N("v"), value=B("|", N("a"), N("b")))),
])
def test_precedence_and_associativity(text, tree):
    assert expr(text) == tree


def test_append_is_lowest_and_left_associative():
    assert expr("v :: 1 :: 2") == A.Append(
        target=A.Append(target=N("v"), value=I(1)), value=I(2))
    assert expr("v :: a || b") == A.Append(
        target=N("v"), value=B("||", N("a"), N("b")))
    assert expr("(v :: 1) :: 2") == expr("v :: 1 :: 2")
    assert expr("v :: w :: x + 1") == A.Append(
        target=A.Append(target=N("v"), value=N("w")),
        value=B("+", N("x"), I(1)))


def test_postfix_chains():
    assert expr("a[1][2]") == A.Index(
        base=A.Index(base=N("a"), index=I(1)), index=I(2))
    assert expr("s->p->x") == A.FieldAccess(
        base=A.FieldAccess(base=N("s"), name="p"), name="x")
    assert expr("f(x)[0]->y") == A.FieldAccess(
        base=A.Index(base=C("f", N("x")), index=I(0)), name="y")
    assert expr("v[i + 1]") == A.Index(base=N("v"), index=B("+", N("i"), I(1)))
    assert expr("(v :: 1)[0]") == A.Index(
        base=A.Append(target=N("v"), value=I(1)), index=I(0))


def test_calls_conversions_and_builtins():
    assert expr("f()") == C("f")
    assert expr("f(1, x, g(2))") == C("f", I(1), N("x"), C("g", I(2)))
    assert expr("int(2.5)") == C("int", A.DoubleLit(value=2.5))
    assert expr("double(1)") == C("double", I(1))
    assert expr("char(65)") == C("char", I(65))
    assert expr("print(len(v))") == C("print", C("len", N("v")))
    assert expr("int(x) + 1") == B("+", C("int", N("x")), I(1))
    # builtin names are names: a local variable may use one
    (decl,) = master_stmts("int len = 3;")
    assert decl == A.VarDecl(type=T.INT, name="len", init=I(3))
    assert expr("print") == N("print")


def test_remote():
    assert expr("remote f(1, x)") == A.Remote(name="f", args=(I(1), N("x")))
    assert expr("remote f()") == A.Remote(name="f", args=())
    assert expr("get(remote f(1))") == C("get", A.Remote(name="f", args=(I(1),)))
    assert expr("!remote f()") == U("!", A.Remote(name="f", args=()))
    assert expr("(remote f())") == A.Remote(name="f", args=())


# ---------------------------------------------------------------- literals

@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("007", 7), ("0100", 100),
    ("9223372036854775807", 9223372036854775807),
])
def test_int_literals(text, value):
    e = expr(text)
    assert isinstance(e, S.IntLit) and e.value == value


def test_int_min_is_written_as_an_expression():
    assert expr("-9223372036854775807 - 1") == B(
        "-", U("-", I(9223372036854775807)), I(1))


@pytest.mark.parametrize("text, value", [
    ("1.5", 1.5), ("1.", 1.0), (".5", 0.5), ("2e10", 2e10),
    ("1.5e-3", 1.5e-3), ("3E+2", 300.0), ("0.0", 0.0), ("1.e2", 100.0),
    ("1e-400", 0.0), ("1.7976931348623157e308", 1.7976931348623157e308),
    ("00.25", 0.25),
])
def test_double_literals(text, value):
    e = expr(text)
    assert isinstance(e, S.DoubleLit) and e.value == value


@pytest.mark.parametrize("text, value", [
    ("'a'", 97), ("' '", 32), ("'\\n'", 10), ("'\\t'", 9), ("'\\r'", 13),
    ("'\\0'", 0), ("'\\\\'", 92), ("'\\''", 39), ("'\\\"'", 34),
    ("'\"'", 34), ("'\\x41'", 65), ("'\\xff'", 255), ("'\\x0A'", 10),
    ("'\t'", 9),
])
def test_char_literals(text, value):
    e = expr(text)
    assert isinstance(e, S.CharLit) and e.value == value


@pytest.mark.parametrize("text, value", [
    ('""', b""), ('"abc"', b"abc"),
    ('"a\\nb\\tc\\r\\0"', b"a\nb\tc\r\0"),
    ('"q\\"q\\\'\\\\"', b"q\"q'\\"), ("\"it's\"", b"it's"),
    ('"\\x00\\x7f\\x80\\xFF"', b"\x00\x7f\x80\xff"),
    ('"caf\u00e9 \u2603"', "caf\u00e9 \u2603".encode("utf-8")),
    ('"// not a comment /* */"', b"// not a comment /* */"),
])
def test_string_literals(text, value):
    e = expr(text)
    assert isinstance(e, S.StringLit) and e.value == value


def test_bool_and_jobstate_literals():
    assert expr("true") == A.BoolLit(value=True)
    assert expr("false") == A.BoolLit(value=False)
    for state in ("running", "finished", "failed", "cancelled"):
        assert expr(state) == A.JobStateLit(value=state)
    # keywords are whole words: these are names
    assert expr("trueish") == N("trueish")
    assert expr("running_total") == N("running_total")
    assert expr("iffy") == N("iffy")


def test_comments_and_whitespace():
    stmts = master_stmts(
        "// a comment\n"
        "int /* inline */ x = 1; // trailing\n"
        "/* multi\n line */ x = x\t+ 2;\n"
        "/* not /* nested */ x = 3;\n"
        "x = 4; //")
    assert [type(s) for s in stmts] == [S.VarDecl, S.Assign, S.Assign, S.Assign]
    assert stmts[3].value == I(4)
    assert parse_src("").decls == ()
    assert parse_src("  // only a comment").decls == ()
    assert parse_src("\r\nmaster {\r\n}\r\n").decls == (
        A.MasterDecl(body=A.Block(stmts=())),)


# ---------------------------------------------------------------- types

@pytest.mark.parametrize("text, ty", [
    ("int", T.INT), ("double", T.DOUBLE), ("bool", T.BOOL), ("char", T.CHAR),
    ("string", T.StringType()), ("jobstate", T.JOBSTATE),
    ("vector<int>", T.VectorType(T.INT)),
    ("vector<vector<int>>", T.VectorType(T.VectorType(T.INT))),
    ("vector<vector<vector<double>>>",
     T.VectorType(T.VectorType(T.VectorType(T.DOUBLE)))),
    ("vector< vector< int > >", T.VectorType(T.VectorType(T.INT))),
    ("vector<string>", T.VectorType(T.StringType())),
    ("job<int>", T.JobType(T.INT)), ("job<void>", T.JobType(T.VOID)),
    ("job<vector<int>>", T.JobType(T.VectorType(T.INT))),
    ("vector<job<int>>", T.VectorType(T.JobType(T.INT))),
    ("struct P", T.StructType("P")),
    ("vector<struct P>", T.VectorType(T.StructType("P"))),
])
def test_types_including_split_of_shift(text, ty):
    (decl,) = master_stmts(f"{text} x;")
    assert decl == A.VarDecl(type=ty, name="x")


def test_shift_and_nested_types_side_by_side():
    """`>>` closes two types in a declaration and shifts in an expression,
    in the same statements, parameters and for headers."""
    prog = parse_src(
        "vector<vector<int>> f(vector<vector<int>> g, job<vector<int>> j)"
        " { return g; }\n"
        "master { vector<vector<int>> g; int y = a >> b>>c;"
        " for (vector<vector<vector<int>>> h; x >> 1 > 0; x >>= 1) {} }")
    f, m = prog.decls
    vv = T.VectorType(T.VectorType(T.INT))
    assert f.ret == vv and [p.type for p in f.params] == [
        vv, T.JobType(T.VectorType(T.INT))]
    g, y, loop = m.body.stmts
    assert g == A.VarDecl(type=vv, name="g")
    assert y.init == B(">>", B(">>", N("a"), N("b")), N("c"))
    assert loop.init.type == T.VectorType(vv)
    assert loop.cond == B(">", B(">>", N("x"), I(1)), I(0))
    assert loop.step.op == ">>="


def test_void_parses_as_a_type_anywhere():
    # whether `void x;` is allowed is typecheck's business
    (decl,) = master_stmts("void x;")
    assert decl.type == T.VOID


# ---------------------------------------------------------------- statements

def test_declarations_and_assignments():
    s = master_stmts("int x; int y = 2; x = 1; x += 1; x -= 1; x *= 2;"
                     " x /= 2; x %= 2; v[0] = 1; s->f = 2; v[i]->g[j] += 3;")
    assert s[0] == A.VarDecl(type=T.INT, name="x")
    assert s[1] == A.VarDecl(type=T.INT, name="y", init=I(2))
    assert [a.op for a in s[2:8]] == ["=", "+=", "-=", "*=", "/=", "%="]
    bits = master_stmts("x &= 1; x |= 2; x ^= 3; x <<= 4; x >>= 5;"
                        " v[i] >>= 1; s->f<<=n;")
    assert [a.op for a in bits] == ["&=", "|=", "^=", "<<=", ">>=", ">>=",
                                    "<<="]
    assert bits[3] == A.Assign(target=N("x"), op="<<=", value=I(4))
    assert bits[5].target == A.Index(base=N("v"), index=N("i"))
    assert bits[6] == A.Assign(target=A.FieldAccess(base=N("s"), name="f"),
                               op="<<=", value=N("n"))
    assert s[2] == A.Assign(target=N("x"), op="=", value=I(1))
    assert s[8] == A.Assign(target=A.Index(base=N("v"), index=I(0)),
                            op="=", value=I(1))
    assert s[9].target == A.FieldAccess(base=N("s"), name="f")
    assert s[10].target == A.Index(
        base=A.FieldAccess(base=A.Index(base=N("v"), index=N("i")),
                           name="g"),
        index=N("j"))


def test_any_expression_is_accepted_as_target_and_statement():
    # lvalue-ness is typecheck's: the parser accepts any expression here
    (a,) = master_stmts("f(x) = 1;")
    assert a == A.Assign(target=C("f", N("x")), op="=", value=I(1))
    (a,) = master_stmts("v :: 1 = w;")
    assert a.target == A.Append(target=N("v"), value=I(1))
    s = master_stmts("1; x; 1 + 2; v :: 3; f();")
    assert all(isinstance(x, S.ExprStmt) for x in s)
    assert s[3].expr == A.Append(target=N("v"), value=I(3))


def test_empty_statements_and_blocks():
    s = master_stmts("; {} { ; } {{ x; }}")
    assert s == (A.Empty(), A.Block(stmts=()), A.Block(stmts=(A.Empty(),)),
                 A.Block(stmts=(A.Block(stmts=(A.ExprStmt(expr=N("x")),)),)))


def test_if_else_and_dangling_else():
    (s,) = master_stmts("if (a) x; else y;")
    assert s == A.If(cond=N("a"), then=A.ExprStmt(expr=N("x")),
                     else_=A.ExprStmt(expr=N("y")))
    (s,) = master_stmts("if (a) if (b) x; else y;")
    assert s == A.If(cond=N("a"), then=A.If(
        cond=N("b"), then=A.ExprStmt(expr=N("x")),
        else_=A.ExprStmt(expr=N("y"))))
    (s,) = master_stmts("if (a) { if (b) x; } else y;")
    assert s.else_ == A.ExprStmt(expr=N("y"))
    (s,) = master_stmts("if (a) x; else if (b) y; else z;")
    assert s.else_ == A.If(cond=N("b"), then=A.ExprStmt(expr=N("y")),
                           else_=A.ExprStmt(expr=N("z")))


def test_while_and_for():
    (s,) = master_stmts("while (i < 3) i += 1;")
    assert s == A.While(cond=B("<", N("i"), I(3)),
                        body=A.Assign(target=N("i"), op="+=", value=I(1)))
    (s,) = master_stmts("for (int i = 0; i < n; i += 1) { f(i); }")
    assert s.init == A.VarDecl(type=T.INT, name="i", init=I(0))
    assert s.cond == B("<", N("i"), N("n"))
    assert s.step == A.Assign(target=N("i"), op="+=", value=I(1))
    assert s.body == A.Block(stmts=(A.ExprStmt(expr=C("f", N("i"))),))
    (s,) = master_stmts("for (;;) ;")
    assert s == A.For(init=None, cond=None, step=None, body=A.Empty())
    (s,) = master_stmts("for (i = 0; ; f(i)) break;")
    assert s.init == A.Assign(target=N("i"), op="=", value=I(0))
    assert s.cond is None
    assert s.step == A.ExprStmt(expr=C("f", N("i")))
    (s,) = master_stmts("for (v :: 1; false; ) continue;")
    assert s.init == A.ExprStmt(expr=A.Append(target=N("v"), value=I(1)))
    assert s.body == A.Continue()
    (s,) = master_stmts("for (vector<int> v; len(v) < 3; v :: 0) {}")
    assert s.init == A.VarDecl(type=T.VectorType(T.INT), name="v")


def test_return_break_continue():
    s = master_stmts("return; return 1 + 2; break; continue;")
    assert s == (A.Return(), A.Return(value=B("+", I(1), I(2))), A.Break(),
                 A.Continue())


# ---------------------------------------------------------------- top level

def test_top_level_declarations():
    prog = parse_src("""
struct P { int x; vector<double> ys; struct Q q; };
struct E {}
struct F { int a; }
int gcd(int a, int b) { return a; }
job vector<int> work(int n, string s) { }
job void nothing() { }
job<int> start() { }
struct P make() { }
master { }
master { }
""")
    kinds = [type(d).__name__ for d in prog.decls]
    assert kinds == ["StructDecl", "StructDecl", "StructDecl", "FuncDecl",
                     "FuncDecl", "FuncDecl", "FuncDecl", "FuncDecl",
                     "MasterDecl", "MasterDecl"]
    p, e, f, gcd, work, nothing, start, make = prog.decls[:8]
    assert p == A.StructDecl(name="P", fields=(
        A.FieldDecl(type=T.INT, name="x"),
        A.FieldDecl(type=T.VectorType(T.DOUBLE), name="ys"),
        A.FieldDecl(type=T.StructType("Q"), name="q")))
    assert e == A.StructDecl(name="E", fields=())
    assert gcd.params == (A.Param(type=T.INT, name="a"),
                          A.Param(type=T.INT, name="b"))
    assert gcd.ret == T.INT and not gcd.is_job
    assert work.is_job and work.ret == T.VectorType(T.INT)
    assert work.params[1] == A.Param(type=T.StringType(), name="s")
    assert nothing.is_job and nothing.ret == T.VOID and nothing.params == ()
    assert not start.is_job and start.ret == T.JobType(T.INT)
    assert make.ret == T.StructType("P")


def test_tree_is_tuples_and_untyped():
    prog = parse_src(
        "struct P { int x; } int f(int a) { return a; } "
        "master { vector<int> v; v :: f(1); print(v[0] + -1); }")
    for node in walk(prog):
        for field in attrs.fields(type(node)):
            assert not isinstance(getattr(node, field.name), list)
        if isinstance(node, S.Expr):
            assert node.type is None


# ---------------------------------------------------------------- positions

def test_positions_of_key_nodes():
    src = ("master {\n"
           "\tint x = a + b * c[i];\n"
           "  v :: f(1)->g;\n"
           "  y += -remote w(2);\n"
           "  if (x) while (z) ;\n"
           "}\n")
    prog = parse_src(src, path="dir/p.ms")
    (m,) = prog.decls
    assert prog.pos == Pos("dir/p.ms", 1, 1)
    assert m.pos == Pos("dir/p.ms", 1, 1)
    assert m.body.pos == Pos("dir/p.ms", 1, 8)
    decl, app, assign, if_ = m.body.stmts

    def at(node):
        assert node.pos.file == "dir/p.ms"
        return node.pos.line, node.pos.col

    assert at(decl) == (2, 6)                 # the name; the tab is 1 column
    plus = decl.init
    assert at(plus) == (2, 12)                # binary at its operator
    assert at(plus.left) == (2, 10)
    assert at(plus.right) == (2, 16)
    assert at(plus.right.right) == (2, 19)    # index at its '['
    assert at(plus.right.right.base) == (2, 18)
    assert at(app) == (3, 3)                  # statement at its first token
    assert at(app.expr) == (3, 5)             # append at '::'
    assert at(app.expr.value) == (3, 12)      # field access at '->'
    assert at(app.expr.value.base) == (3, 8)  # call at the callee's name
    assert at(assign) == (4, 5)               # assign at its operator
    assert at(assign.value) == (4, 8)         # unary at its operator
    assert at(assign.value.operand) == (4, 9)  # remote at 'remote'
    assert at(assign.value.operand.args[0]) == (4, 18)
    assert at(if_) == (5, 3)
    assert at(if_.then) == (5, 10)
    assert at(if_.then.body) == (5, 20)       # the empty statement's ';'


def test_positions_of_declarations_and_conversions():
    prog = parse_src("struct P {\n  int x;\n}\njob int work(double d) {\n"
                     "  return int(d);\n}\nmaster { for (int i = 0;;) break; }")
    p, work, m = prog.decls
    assert (p.pos.line, p.pos.col) == (1, 8)
    assert (p.fields[0].pos.line, p.fields[0].pos.col) == (2, 7)
    assert (work.pos.line, work.pos.col) == (4, 9)
    assert (work.params[0].pos.line, work.params[0].pos.col) == (4, 21)
    ret = work.body.stmts[0]
    assert (ret.pos.line, ret.pos.col) == (5, 3)
    assert (ret.value.pos.line, ret.value.pos.col) == (5, 10)
    loop = m.body.stmts[0]
    assert (loop.pos.line, loop.pos.col) == (7, 10)
    assert (loop.init.pos.line, loop.init.pos.col) == (7, 19)


def test_columns_count_characters_not_bytes():
    (s,) = master_stmts('s = "\u00e9\u00e9\u00e9" + t;')
    assert s.value.pos.col == 11


# ---------------------------------------------------------------- lexical errors

@pytest.mark.parametrize("body, col, message", [
    ("x = 1 @ 2;", 7, "unexpected character '@'"),
    ("# include", 1, "unexpected character '#'"),
    ("x = y $ 1;", 7, "unexpected character '$'"),
    ("x = 1 ` 2;", 7, "unexpected character '`'"),
    ("x = 1 ? 2 : 3;", 7, "unexpected character '?' (M/s has no '?:' operator; use if/else)"),
    ("x = a : b;", 7, "unexpected character ':'"),
    ("x = a.b;", 6, "unexpected character '.' (M/s accesses a struct's fields with '->', as in p->x)"),
    ("int caf\u00e9 = 1;", 8, "unexpected character '\u00e9'"),
    ("x = \u00a0 1;", 5, "unexpected character U+00A0"),
    ("x = 1; /* never closed", 8, "unterminated comment"),
    ("x = 123abc;", 8, "invalid suffix 'abc' on integer literal"),
    ("x = 1.5f;", 8, "invalid suffix 'f' on double literal"),
    ("x = 1e;", 6, "invalid suffix 'e' on integer literal"),
    ("x = 9223372036854775808;", 5,
     "integer literal 9223372036854775808 is too large "
     "(the largest int is 9223372036854775807)"),
    ("x = -9223372036854775808;", 6,
     "integer literal 9223372036854775808 is too large "
     "(the largest int is 9223372036854775807)"),
    ("x = 99999999999999999999999;", 5,
     "integer literal 99999999999999999999999 is too large "
     "(the largest int is 9223372036854775807)"),
    ("x = 1e309;", 5,
     "double literal 1e309 is too large (it overflows to infinity)"),
    ("x = 1.8e308;", 5,
     "double literal 1.8e308 is too large (it overflows to infinity)"),
    ("c = '';", 5, "empty character literal"),
    ("c = '\u00e9';", 5,
     "character literal '\u00e9' is 2 bytes in UTF-8; a char is one byte"),
    ("c = 'ab';", 5, "character literal 'ab' holds more than one character"),
    ("c = 'a;", 5, "unterminated character literal"),
    ("c = '\\q';", 6, "unknown escape sequence '\\q'"),
    ("c = '\\x4';", 6, "escape '\\x' needs two hexadecimal digits"),
    ("c = '\\xg0';", 6, "escape '\\x' needs two hexadecimal digits"),
    ('s = "abc\\q";', 9, "unknown escape sequence '\\q'"),
    ('s = "\\a";', 6, "unknown escape sequence '\\a'"),
    ('s = "\\";', 5, "unterminated string literal"),
    ('s = "abc;', 5, "unterminated string literal"),
    ('s = "ab\ncd";', 5, "unterminated string literal"),
])
def test_lexical_errors(body, col, message):
    assert master_error(body) == (1, col, message)


def test_first_error_wins_between_lexical_and_syntax():
    # the syntax error comes first in the text
    assert master_error("x = ;\ny = 1 @ 2;") == (
        1, 5, "expected expression, found ';'")
    # the lexical error comes first
    assert master_error("y = 1 @ 2;\nx = ;") == (
        1, 7, "unexpected character '@'")
    # a literal's value is checked even when the program parses
    assert master_error("x = 1;\ny = 99999999999999999999;") == (
        2, 5, "integer literal 99999999999999999999 is too large "
              "(the largest int is 9223372036854775807)")


def test_error_position_is_in_characters_and_tabs_are_one_column():
    assert master_error('\ts = "\u00e9\u00e9" @;') == (
        1, 11, "unexpected character '@'")


# ---------------------------------------------------------------- syntax errors

@pytest.mark.parametrize("body, where, message", [
    # a missing ';' is reported just after the token it should follow
    ("int x = 5", (1, 10), "expected ';' after declaration, found '}'"),
    ("x = 1\ny = 2;", (1, 6), "expected ';' after assignment, found 'y'"),
    ("f() g();", (1, 4), "expected ';' after expression, found 'g'"),
    ("return 1 2;", (1, 9), "expected ';' after return statement, found '2'"),
    ("break }", (1, 6), "expected ';' after 'break', found '}'"),
    ("continue", (1, 9), "expected ';' after 'continue', found '}'"),
    ("for (i = 0 i < 3; i += 1) {}", (1, 11),
     "expected ';' in 'for' statement, found 'i'"),
    ("for (int i = 0; i < 3) {}", (1, 22),
     "expected ';' in 'for' statement, found ')'"),
    ("x = y = 1;", (1, 6), "expected ';' after assignment, found '=' "
                           "(assignment is a statement, not an expression)"),
    # otherwise at the offending token
    ("int x = ;", (1, 9), "expected expression, found ';'"),
    ("x += ;", (1, 6), "expected expression, found ';'"),
    ("x = 1 + ;", (1, 9), "expected expression, found ';'"),
    ("x = 1 * (2 - );", (1, 14), "expected expression, found ')'"),
    ("x = - ;", (1, 7), "expected expression, found ';'"),
    ("x = v[];", (1, 7), "expected expression, found ']'"),
    ("f(1, );", (1, 6), "expected expression, found ')'"),
    ("f(1 2);", (1, 5), "expected ',' or ')', found '2'"),
    ("v[1 2];", (1, 5), "expected ']', found '2'"),
    ("x = (1 + 2;", (1, 11), "expected ')', found ';'"),
    ("if (x { }", (1, 7), "expected ')', found '{'"),
    ("if x { }", (1, 4), "expected '(', found 'x'"),
    ("while (x) }", (1, 11), "expected statement, found '}'"),
    ("if (x = 1) {}", (1, 7), "expected ')', found '=' "
                              "(assignment is a statement, not an expression)"),
    ("int while = 3;", (1, 5), "expected identifier, found keyword 'while'"),
    ("int x = while;", (1, 9), "expected expression, found keyword 'while'"),
    ("int 5;", (1, 5), "expected identifier, found '5'"),
    ("struct 5 p;", (1, 8), "expected identifier, found '5'"),
    ("vector<int v;", (1, 12), "expected '>', found 'v'"),
    ("vector<> v;", (1, 8), "expected type, found '>'"),
    ("job<int j;", (1, 9), "expected '>', found 'j'"),
    ("x->;", (1, 4), "expected identifier, found ';'"),
    ("x = remote 5;", (1, 12), "expected identifier, found '5'"),
    ("x = remote f;", (1, 13), "expected '(', found ';'"),
    ("f(x)(y);", (1, 5), "expected ';' after expression, found '('"),
    ("else x = 1;", (1, 1), "'else' without a matching 'if'"),
    ("x = int;", (1, 8), "expected '(', found ';'"),
    ("x = double 1;", (1, 12), "expected '(', found '1'"),
    ("y = (x = 1);", (1, 8), "expected ')', found '=' "
                             "(assignment is a statement, not an expression)"),
    ("= 1;", (1, 1), "expected statement or '}', found '='"),
    ("x = 1; )", (1, 8), "expected statement or '}', found ')'"),
    ("int x = 1 += 2;", (1, 10), "expected ';' after declaration, found '+=' "
                                 "(assignment is a statement, not an expression)"),
    # bit operations
    ("x = 1 << ;", (1, 10), "expected expression, found ';'"),
    ("x = a & & b;", (1, 9), "expected expression, found '&'"),
    ("x = ~;", (1, 6), "expected expression, found ';'"),
    ("f(x <<= 1);", (1, 5), "expected ',' or ')', found '<<=' "
                            "(assignment is a statement, not an expression)"),
    ("int y = x >>= 1;", (1, 10), "expected ';' after declaration, found "
                                  "'>>=' (assignment is a statement, not an "
                                  "expression)"),
    # `>>` closing one type too many: the second '>' is what was found
    ("vector<int>> x;", (1, 12), "expected identifier, found '>'"),
    ("vector<vector<int>>> x;", (1, 20), "expected identifier, found '>'"),
    ("vector<vector<int> x;", (1, 20), "expected '>', found 'x'"),
])
def test_syntax_errors_in_statements(body, where, message):
    assert master_error(body) == (*where, message)


@pytest.mark.parametrize("src, where, message", [
    ("int x;", (1, 6), "expected '(' after the function name, found ';' "
                       "(M/s has no global variables)"),
    ("int x = 3;", (1, 7), "expected '(' after the function name, found '=' "
                           "(M/s has no global variables)"),
    ("int f(x) {}", (1, 7), "expected type or ')', found 'x'"),
    ("int f(int x y) {}", (1, 13), "expected ',' or ')', found 'y'"),
    ("int f(int x,) {}", (1, 13), "expected type, found ')'"),
    ("int f() return 1;", (1, 9), "expected '{', found keyword 'return'"),
    ("struct P { int x; int y }", (1, 24),
     "expected ';' after field declaration, found '}'"),
    ("struct P { int x = 1; }", (1, 17),
     "expected ';' after field declaration, found '=' "
     "(assignment is a statement, not an expression)"),
    ("struct P { int x; ", (1, 18), "unexpected end of file, expected '}'"),
    ("master { x = 1;", (1, 16), "unexpected end of file, expected '}'"),
    # at the end of the file: just after the last token
    ("master {\n  if (x) {\n    y;\n  }\n", (4, 4),
     "unexpected end of file, expected '}'"),
    ("master", (1, 7), "unexpected end of file, expected '{'"),
    ("master { } }", (1, 12), "expected top-level declaration, found '}'"),
    ("master { } x", (1, 12), "expected top-level declaration, found 'x'"),
    ("struct P {} sqrt", (1, 13), "expected top-level declaration, found 'sqrt'"),
    # the grammar fails at a token that is itself lexically bad
    ('master "\\q" {}', (1, 9), "unknown escape sequence '\\q'"),
    ("master 'ab' {}", (1, 8), "character literal 'ab' holds more than "
                               "one character"),
    ("job f() {}", (1, 5), "expected type or '<', found 'f'"),
    ("job int while() {}", (1, 9), "expected identifier, found keyword 'while'"),
    ("void remote() {}", (1, 6), "expected identifier, found keyword 'remote'"),
    ("int int(double x) { return 0; }", (1, 5),
     "expected identifier, found keyword 'int'"),
    ("master { if (a) {} else }", (1, 25), "expected statement, found '}'"),
])
def test_syntax_errors_at_top_level(src, where, message):
    assert error(src) == (*where, message)


def test_error_position_names_the_file():
    with pytest.raises(CompileError) as info:
        parse.run(Source("sub/prog.ms", "master {"))
    assert info.value.pos == Pos("sub/prog.ms", 1, 9)


# ---------------------------------------------------------------- depth, speed

def _depth(e):
    d = 0
    while isinstance(e, (S.Binary, S.Unary)):
        e = e.left if isinstance(e, S.Binary) else e.operand
        d += 1
    return d


def test_long_chains_parse_without_recursion():
    chain = "+".join(["1"] * 5000)
    (s,) = master_stmts(f"int x = {chain};")
    assert _depth(s.init) == 4999  # left-associative: the left spine
    (s,) = master_stmts("int x = " + "-" * 5000 + "1;")
    assert _depth(s.init) == 5000
    (s,) = master_stmts("x = v" + "[0]" * 2000 + ";")
    assert s.value.index == I(0)


def test_deep_parentheses_parse_or_fail_cleanly():
    limit = sys.getrecursionlimit()
    # as deep as allowed: a correct tree (the master block is one level)
    depth = parse.MAX_NESTING - 1
    (s,) = master_stmts("x = " + "(" * depth + "1 + 2" + ")" * depth + ";")
    assert s.value == B("+", I(1), I(2))
    # deeper: a clean error at the first bracket too many
    line, col, msg = master_error("x = " + "(" * 500 + "1" + ")" * 500 + ";")
    assert (line, col) == (1, 5 + depth)
    assert msg == (f"nested too deeply (more than {parse.MAX_NESTING} "
                   "levels of brackets)")
    assert sys.getrecursionlimit() == limit  # restored


def test_deeply_nested_statements():
    n = 2000
    (s,) = master_stmts(" else ".join(["if (x) y;"] * n))
    depth = 0
    while s is not None:
        depth += 1
        s = s.else_
    assert depth == n
    (s,) = master_stmts("if (x) " * n + "y;")
    depth = 0
    while isinstance(s, S.If):
        depth += 1
        s = s.then
    assert depth == n


def test_statements_nested_beyond_the_stack_fail_cleanly():
    limit = sys.getrecursionlimit()
    # Far beyond what the parser recurses through and beyond MAX_DEPTH, so
    # whichever limit is met first, the error is a located one.
    line, col, msg = master_error("if (x) " * 200000 + "y;")
    assert msg.endswith("nested too deeply") or "nested too deeply (more" in msg
    assert line == 1 and col > 1000  # near where the parser had got to
    assert sys.getrecursionlimit() == limit


def test_a_two_thousand_line_program_parses_quickly():
    func = """int f{n}(int a, vector<int> v) {{
    int s = 0;
    for (int i = 0; i < len(v); i += 1) {{
        if (v[i] % 2 == 0 && a > 0) s += v[i] * a; else s -= 1;
    }}
    while (s > 100) s = s / 2;
    string t = "x" + str(s);
    return s + f{n}(a - 1, v :: 1);
}}
"""
    src = "".join(func.format(n=n) for n in range(250)) + "master { }\n"
    assert src.count("\n") >= 2000
    # CPU time, not wall time: other processes on a shared machine do not
    # count against it (1.1 s here, alone or not).
    start = time.process_time()
    prog = parse_src(src)
    elapsed = time.process_time() - start
    assert len(prog.decls) == 251
    assert elapsed < 5.0, f"parsing 2000 lines took {elapsed:.2f}s of CPU"


def test_every_token_rule_is_folded_into_one_regex():
    # parse.py relies on each UPPER_CASE rule being one regex whose group
    # `t` is the token's text (see fold_token_rules)
    g = parse.grammar()
    tokens = [name for name in g if name.isupper()]
    assert len(tokens) > 40
    for name in tokens:
        rule = g[name]
        assert type(rule).__name__ == "Regex", name
        if name != "END":
            assert "t" in rule.re.groupindex, name
    m = g["SEMI"].re.match("; // comment\n /* c */ x")
    assert m.group("t") == ";" and m.group()[-1] == " "
