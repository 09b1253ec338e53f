"""progen: random, well-typed, terminating M/s programs for differential tests.

`generate(seed)` returns the text of a program that compiles, runs in well
under a second, and prints many intermediate values. It covers: structs
(scalar, string, vector and nested struct fields), functions and jobs with
scalar, vector, struct and string parameters and results, nested blocks
with shadowing, if/else, bounded for/while loops with break/continue, int
arithmetic with wrapping constants and division/remainder (divisors usually
nonzero, occasionally zero), bit operations (& | ^ ~ << >> and their
compound assignments; shift counts usually in 0..63, occasionally not),
double arithmetic and math builtins,
conversions, comparisons, && and || with side-effecting calls, SPEC 12.3's
text and vector builtins (int(s), double(s), find, slice, sort, repeat,
split, join: small operands, mostly valid arguments), vectors built
with `::` (chained, as values, `v :: v`), indexing (mostly in range,
occasionally out of range), nested writes (`g[i][j] = x`, `s->v[k] = y`,
`a[i]->inner->x += 1`), copies followed by writes to one side, strings
(`+`, `+=`, `str()`, char appends, comparisons), equality of vectors and
structs, and `remote` jobs (several in flight, handles in vectors, jobs that
fail, by a runtime error or `fail`, get/state/cancel after completion, error
after wait, wait_any over vectors of ended jobs), `eprint` in the master (what a
job eprints goes to a slave, as its prints do), and now and then a
`read_file` of a path that does not exist, in the master or in a job, for
the runtime error.

Only behaviour that SPEC fixes is generated: `state` and `cancel` are used
on a job only after a successful `get` (before that the answer depends on
timing), and when an element of a vector is appended to (`g[i] :: e`) the
appended value cannot fail or print (SPEC does not order that bounds check
against e).

Each candidate program is run by the reference interpreter (tools/msi) with
a step budget; one that would run too long or build huge values is replaced
by the next candidate from the same seed, so generation is deterministic.

    python -m tools.progen --seed N       print the program for seed N
"""
from __future__ import annotations

import argparse
import random
import sys

from compiler.builtins import TABLE as BUILTINS
from compiler.ir import types as T

INT, DOUBLE, BOOL, CHAR, STRING = T.INT, T.DOUBLE, T.BOOL, T.CHAR, T.STRING
PRINTABLE = (INT, DOUBLE, BOOL, CHAR, STRING)

BIG_INTS = ["9223372036854775807", "(-9223372036854775807 - 1)",
            "4611686018427387904", "3037000500", "1000000007",
            "-4294967296", "2147483647", "6148914691236517205"]
DOUBLES = ["0.5", "2.25", "1e300", "1e-300", "-0.0", "3.14159", "0.1",
           "1.0", "100.0", "-7.75", "1e16", "123456.789", "2e-7", "0.3"]
STRINGS = ['""', '"a"', '"ab"', '"hello"', '"x y"', '"zz"', '"Ab"',
           '"b"', '"\\t!"', '"abc"']
# Texts for int(s) and double(s) (SPEC 12.3); the BAD ones, which end the
# program, are picked rarely.
INT_TEXTS = ['"0"', '"42"', '" -7 "', '"+3"', '"\\t12\\n"',
             '"9223372036854775807"', '"-9223372036854775808"', '"007"']
BAD_INT_TEXTS = ['"1x"', '"9223372036854775808"', '""', '"1.0"']
DOUBLE_TEXTS = ['"1.5"', '"1."', '".5"', '"2e10"', '" -1.5e-3 "', '"3E+2"',
                '"42"', '"inf"', '"-inf"', '"nan"', '"1e400"', '"1e-400"',
                '"4.9e-324"', '"0.1"']
BAD_DOUBLE_TEXTS = ['"0x1p3"', '"infinity"', '"1e"', '"."']
CHARS = ["'a'", "'b'", "'z'", "'A'", "'0'", "' '", "'~'", "'\\n'", "'x'"]
# The math builtins with C's results, by arity, in table order.
_C_MATH = {n: [b.name for b in BUILTINS.values()
               if b.c_function is not None and b.arity == n] for n in (1, 2)}


def mangle(t: T.Type) -> str:
    if t == INT:
        return "i"
    if t == DOUBLE:
        return "d"
    if t == BOOL:
        return "b"
    if t == CHAR:
        return "c"
    if isinstance(t, T.VectorType):
        return "s" if t == STRING else "v" + mangle(t.elem)
    if isinstance(t, T.StructType):
        return t.name
    if isinstance(t, T.MapType):   # SPEC 13
        return f"m{mangle(t.key)}{mangle(t.value)}e"
    raise AssertionError(t)


class Var:
    def __init__(self, name, type, readonly=False, unset=False):
        self.name = name
        self.type = type
        self.readonly = readonly
        self.unset = unset


class Body:
    """The generation state of one function, job or master body."""

    def __init__(self, kind: str, ret: T.Type):
        self.kind = kind          # "master", "function" or "job"
        self.ret = ret
        self.frames = [{}]
        self.loops = 0
        self.counter = 0
        self.lines = []
        self.indent = 1

    def fresh(self, prefix="a") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def vars(self):
        seen = {}
        for frame in self.frames:
            seen.update(frame)
        return list(seen.values())

    def declare(self, var: Var):
        self.frames[-1][var.name] = var

    def emit(self, text: str):
        self.lines.append("  " * self.indent + text)


# Known compiler bugs the generator can steer away from (--avoid), so that
# a run over many seeds finds other ones; each has a reproducer in
# tests/golden/differential/.
KNOWN_BUGS = {
    # g[i][j] evaluates j before checking i (reads only).
    "nested-read-order",
}


class Generator:
    def __init__(self, seed: int, avoid=frozenset()):
        self.avoid = frozenset(avoid)
        self.r = random.Random(seed)
        self.structs = {}     # name -> [(field, type)]
        self.functions = []   # (name, params [(name, type)], ret)
        self.jobs = []
        self.body = None
        self.stmt_budget = 0

    # ------------------------------------------------------------ choices

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(list(seq))

    # ------------------------------------------------------------ types

    def setup_types(self):
        r = self.r
        names = [f"S{k}" for k in range(r.randint(1, 3))]
        for k, name in enumerate(names):
            fields = []
            pool = [INT, INT, DOUBLE, BOOL, CHAR, STRING, T.VectorType(INT),
                    T.VectorType(DOUBLE), T.MapType(STRING, INT)]
            for earlier in names[:k]:
                pool += [T.StructType(earlier), T.VectorType(T.StructType(earlier))]
            for j in range(r.randint(1 if k else 2, 4)):
                fields.append((f"f{j}", self.pick(pool)))
            self.structs[name] = fields
        self.types = [INT, DOUBLE, BOOL, CHAR, STRING, T.VectorType(INT),
                      T.VectorType(DOUBLE), T.VectorType(STRING),
                      T.VectorType(T.VectorType(INT))]
        for name in names:
            self.types.append(T.StructType(name))
        last = T.StructType(names[-1])
        self.types.append(T.VectorType(last))
        # Maps (SPEC 13), nested in vectors, structs and other maps.
        self.types += [T.MapType(STRING, INT), T.MapType(INT, T.VectorType(INT)),
                       T.MapType(CHAR, last), T.MapType(BOOL, STRING),
                       T.MapType(INT, T.MapType(STRING, INT)),
                       T.VectorType(T.MapType(STRING, INT))]

    def value_type(self, simple_bias=0.5) -> T.Type:
        if self.chance(simple_bias):
            return self.pick([INT, INT, DOUBLE, BOOL, CHAR, STRING])
        return self.pick(self.types)

    def all_types(self):
        """Every type that values of self.types contain, innermost first."""
        out = []

        def add(t):
            if t in out:
                return
            if isinstance(t, T.VectorType):
                add(t.elem)
            if isinstance(t, T.MapType):
                add(t.key)
                add(t.value)
            if isinstance(t, T.StructType):
                for _, ft in self.structs[t.name]:
                    add(ft)
            out.append(t)
        for t in self.types:
            add(t)
        return out

    # ------------------------------------------------------------ top level

    def program(self) -> str:
        r = self.r
        self.setup_types()
        parts = []
        for name, fields in self.structs.items():
            inner = " ".join(f"{ft} {fn};" for fn, ft in fields)
            parts.append(f"struct {name} {{ {inner} }};")
        parts.append(HELPERS)
        for t in self.all_types():
            if not (t in PRINTABLE):
                parts.append(self.show_function(t))
        for name in self.structs:
            parts.append(self.maker(name))
        # Functions then jobs: each may call the ones declared before it.
        for k in range(r.randint(2, 4)):
            parts.append(self.function(f"fn{k}", is_job=False))
        for k in range(r.randint(2, 3)):
            parts.append(self.function(f"jb{k}", is_job=True))
        parts.append(self.master())
        return "\n\n".join(parts) + "\n"

    def show_function(self, t: T.Type) -> str:
        name = f"show_{mangle(t)}"
        lines = [f"void {name}({t} x) {{"]
        if isinstance(t, T.VectorType):
            lines.append("  print(len(x));")
            lines.append("  for (int i = 0; i < len(x); i += 1) {")
            lines.append(f"    {self.show_call('x[i]', t.elem)}")
            lines.append("  }")
        elif isinstance(t, T.MapType):
            # In insertion order, through keys and values (SPEC 13).
            lines.append("  print(len(x));")
            lines.append(f"  vector<{t.key}> ks = keys(x);")
            lines.append(f"  vector<{t.value}> vs = values(x);")
            lines.append("  for (int i = 0; i < len(ks); i += 1) {")
            lines.append(f"    {self.show_call('ks[i]', t.key)}")
            lines.append(f"    {self.show_call('x[ks[i]]', t.value)}")
            lines.append(f"    print(x[ks[i]] == vs[i]);")
            lines.append("  }")
        else:
            for fn, ft in self.structs[t.name]:
                lines.append(f"  {self.show_call('x->' + fn, ft)}")
        lines.append("}")
        return "\n".join(lines)

    def show_call(self, text: str, t: T.Type) -> str:
        if t in PRINTABLE:
            return f"print({text});"
        return f"show_{mangle(t)}({text});"

    def maker(self, name: str) -> str:
        fields = self.structs[name]
        params = ", ".join(f"{ft} p{k}" for k, (_, ft) in enumerate(fields))
        lines = [f"struct {name} mk_{name}({params}) {{", f"  struct {name} s;"]
        for k, (fn, _) in enumerate(fields):
            lines.append(f"  s->{fn} = p{k};")
        lines.append("  return s;")
        lines.append("}")
        return "\n".join(lines)

    def function(self, name: str, is_job: bool) -> str:
        r = self.r
        params = [(f"p{k}", self.value_type(0.6)) for k in range(r.randint(0, 3))]
        if is_job and self.chance(0.15):
            ret = T.VOID
        else:
            ret = self.value_type(0.6)
        self.body = Body("job" if is_job else "function", ret)
        for pname, pt in params:
            self.body.declare(Var(pname, pt))
        self.stmt_budget = r.randint(3, 9)
        while self.stmt_budget > 0:
            self.stmt(depth=2)
        if ret != T.VOID:
            self.body.emit(f"return {self.expr(ret, 2)};")
        head = ("job " if is_job else "") + f"{ret} {name}(" + \
            ", ".join(f"{pt} {pn}" for pn, pt in params) + ") {"
        text = "\n".join([head, *self.body.lines, "}"])
        (self.jobs if is_job else self.functions).append((name, params, ret))
        return text

    def master(self) -> str:
        self.body = Body("master", T.VOID)
        self.stmt_budget = self.r.randint(25, 45)
        while self.stmt_budget > 0:
            self.stmt(depth=3)
        return "\n".join(["master {", *self.body.lines, "}"])

    # ------------------------------------------------------------ statements

    def block_stmts(self, depth: int, count: int | None = None):
        n = count if count is not None else self.r.randint(1, 4)
        for _ in range(n):
            if self.stmt_budget <= 0:
                break
            self.stmt(depth)

    def nested(self, header: str, depth: int, setup=None, loop=False,
               count=None):
        b = self.body
        b.emit(header + " {")
        b.indent += 1
        b.frames.append({})
        if setup:
            setup()
        if loop:
            b.loops += 1
        self.block_stmts(depth - 1, count)
        if loop:
            b.loops -= 1
        b.frames.pop()
        b.indent -= 1
        b.emit("}")

    def stmt(self, depth: int):
        self.stmt_budget -= 1
        b = self.body
        kinds = [("decl", 6), ("assign", 5), ("print", 6), ("append", 3),
                 ("show", 2), ("call", 1)]
        if depth > 0:
            kinds += [("if", 2), ("block", 1), ("for", 2), ("while", 1)]
        if b.loops:
            kinds += [("break", 1), ("continue", 1)]
        if b.kind == "master":
            kinds += [("remote", 4), ("remote_vec", 1), ("copy", 1),
                      ("eprint", 2)]
            if self.chance(0.01):
                kinds.append(("return", 1))
        if self.chance(0.01):
            kinds.append(("missing_file", 1))
        kinds += [("string", 2), ("order", 1), ("map", 3)]
        if b.kind != "master" or self.chance(0.05):
            kinds.append(("fail", 1))
        kind = self.weighted(kinds)
        getattr(self, "s_" + kind)(depth)

    def weighted(self, kinds):
        total = sum(w for _, w in kinds)
        x = self.r.uniform(0, total)
        for k, w in kinds:
            x -= w
            if x <= 0:
                return k
        return kinds[-1][0]

    def new_name(self, prefix="a") -> str:
        b = self.body
        # Sometimes shadow a variable of an enclosing block.
        if len(b.frames) > 1 and self.chance(0.2):
            outer = [v.name for f in b.frames[:-1] for v in f.values()
                     if v.name not in b.frames[-1]]
            if outer:
                return self.pick(outer)
        return b.fresh(prefix)

    def s_decl(self, depth):
        t = self.value_type(0.55)
        b = self.body
        if isinstance(t, T.VectorType) and self.chance(0.5):
            # Declared empty, then filled (from values computed while the
            # new name is not yet visible, and does not shadow anything).
            name = b.fresh()
            values = [self.expr(t.elem, 1) for _ in range(self.r.randint(1, 4))]
            b.emit(f"{t} {name};")
            if self.chance(0.95):
                b.emit(f"{name} :: " + " :: ".join(values) + ";")
        else:
            name = self.new_name()
            if self.chance(0.03):
                b.emit(f"{t} {name};")
            else:
                b.emit(f"{t} {name} = {self.expr(t, 2)};")
        b.declare(Var(name, t))

    def s_assign(self, depth):
        t = self.value_type(0.5)
        target = self.lvalue(t)
        if target is None:
            return self.s_decl(depth)
        ops = ["="]
        if t in (INT, DOUBLE):
            ops += ["+=", "-=", "*=", "/="]
        if t == INT:
            ops += ["%=", "&=", "|=", "^=", "<<=", ">>="]
        if isinstance(t, T.VectorType):
            ops += ["+="]
        op = self.pick(ops)
        if op in ("/=", "%=") and t == INT:
            value = self.divisor()
        elif op in ("<<=", ">>="):
            value = self.shift_count()
        elif op == "+=" and isinstance(t, T.VectorType) and self.body.loops:
            value = self.small_vector(t)
        else:
            value = self.expr(t, 2)
        self.body.emit(f"{target} {op} {value};")
        if self.chance(0.5):
            self.body.emit(self.show_call(target, t))

    def s_print(self, depth):
        t = self.pick([INT, INT, DOUBLE, BOOL, CHAR, STRING, STRING])
        self.body.emit(f"print({self.expr(t, 3)});")

    def s_eprint(self, depth):
        t = self.pick([INT, DOUBLE, BOOL, CHAR, STRING, STRING])
        self.body.emit(f"eprint({self.expr(t, 2)});")

    def s_missing_file(self, depth):
        """SPEC 12.2's error: the path exists neither where msi runs nor in
        the directory of the compiled run."""
        self.body.emit('print(len(read_file("ms-progen-no-such-file")));')

    def s_show(self, depth):
        t = self.value_type(0.2)
        self.body.emit(self.show_call(self.expr(t, 2), t))

    def s_call(self, depth):
        fns = self.functions + self.jobs
        if not fns:
            return self.s_print(depth)
        name, params, ret = self.pick(fns)
        args = ", ".join(self.expr(pt, 1) for _, pt in params)
        self.body.emit(f"{name}({args});")

    def s_append(self, depth):
        vt = self.pick([t for t in self.types if isinstance(t, T.VectorType)])
        target = self.lvalue(vt)
        if target is None:
            return self.s_decl(depth)
        indexed = "[" in target
        n = self.r.randint(1, 3)
        values = []
        for _ in range(n):
            if indexed:
                values.append(self.safe_expr(vt.elem))
            elif self.chance(0.1) and vt.elem == vt.elem and "->" not in target:
                values.append(f"{target}[ix({self.small_int()}, len({target}))]"
                              if self.chance(0.5) else self.expr(vt.elem, 1))
            else:
                values.append(self.expr(vt.elem, 1))
        if n == 2 and self.chance(0.3):
            self.body.emit(f"({target} :: {values[0]}) :: {values[1]};")
        else:
            self.body.emit(f"{target} :: " + " :: ".join(values) + ";")
        if self.chance(0.4):
            self.body.emit(f"print(len({target}));")

    def s_string(self, depth):
        """String building: +, +=, str(), char appends, comparisons."""
        name = self.new_name("s")
        b = self.body
        b.emit(f"string {name} = {self.expr(STRING, 1)};")
        b.declare(Var(name, STRING))
        for _ in range(self.r.randint(1, 3)):
            k = self.r.randint(0, 3)
            if k == 0:
                b.emit(f"{name} += str({self.expr(self.pick([INT, DOUBLE, BOOL, CHAR]), 1)});")
            elif k == 1:
                b.emit(f"{name} :: {self.expr(CHAR, 1)};")
            elif k == 2:
                b.emit(f"{name} = {self.pick(STRINGS)} + {name};")
            else:
                b.emit(f"{name} += {self.pick(STRINGS)};")
        b.emit(f"print({name});")
        op = self.pick(["<", "<=", ">", ">=", "==", "!="])
        b.emit(f"print({name} {op} {self.expr(STRING, 1)});")

    def s_order(self, depth):
        """Order of evaluation, visible through tr() prints."""
        b = self.body
        k = self.r.randint(0, 3)
        if k == 0:
            b.emit(f"print(tr({self.small_int()}) - tr({self.small_int()}) * tr({self.small_int()}));")
        elif k == 1:
            vt = T.VectorType(INT)
            target = self.lvalue(vt, allow_index=False)
            if target is None:
                return self.s_print(depth)
            # lv = e: the index first, then e, then the bounds check.
            idx = f"tr({self.r.randint(-1, 3)})" if self.chance(0.3) else \
                f"ix(tr({self.small_int()}), len({target}))"
            if self.chance(0.3):
                value = f"len({target} :: tr({self.small_int()}))"
            else:
                value = f"tr({self.small_int()})"
            op = self.pick(["=", "+=", "-="])
            b.emit(f"{target}[{idx}] {op} {value};")
            b.emit(f"show_vi({target});")
        elif k == 2:
            b.emit(f"print(tb({self.expr(BOOL, 1)}, 1) {self.pick(['&&', '||'])} "
                   f"tb({self.expr(BOOL, 1)}, 2) {self.pick(['&&', '||'])} "
                   f"tb({self.expr(BOOL, 1)}, 3));")
        else:
            fns = [f for f in self.functions if f[1]]
            if not fns:
                return self.s_print(depth)
            name, params, ret = self.pick(fns)
            args = []
            for k2, (_, pt) in enumerate(params):
                if pt == INT:
                    args.append(f"tr({self.small_int()})")
                else:
                    args.append(self.expr(pt, 1))
            call = f"{name}({', '.join(args)})"
            if ret == T.VOID:
                b.emit(call + ";")
            else:
                b.emit(self.show_call(call, ret))

    def s_map(self, depth):
        """An operation of SPEC 13 on a map lvalue (a variable, element or
        field): guarded and unguarded reads, has, len, keys, writes that
        need the key, inserts and removals."""
        mt = self.pick([t for t in self.types if isinstance(t, T.MapType)])
        m = self.lvalue(mt)
        if m is None:
            m = self.empty(mt)
        b, k, v = self.body, self.map_key(mt.key), mt.value
        x = self.r.randint(0, 7)
        if x == 0:
            b.emit(f"if (has({m}, {k})) {self.show_call(f'{m}[{k}]', v)}")
        elif x == 1:
            b.emit(f"print(has({m}, {k}));")
        elif x == 2:
            b.emit(f"print(len({m}));")
            b.emit(self.show_call(f"keys({m})", T.VectorType(mt.key))
                   if T.VectorType(mt.key) in self.all_types() or
                   T.VectorType(mt.key) == STRING else f"print(len(keys({m})));")
        elif x == 3:
            self.mutate(m, mt)
        elif x == 4 and v == INT:
            b.emit(f"if (has({m}, {k})) {m}[{k}] {self.pick(['+=', '-=', '*='])} "
                   f"{self.small_int()};")
        elif x == 4 and isinstance(v, T.VectorType):
            b.emit(f"if (has({m}, {k})) {m}[{k}] :: {self.safe_expr(v.elem)};")
        elif x == 5 and self.chance(0.2):
            # Unguarded: a missing key ends the program (`key K not in map`).
            b.emit(self.show_call(f"{m}[{k}]", v))
        elif x == 6:
            b.emit(f"remove({m}, {k});")
        else:
            b.emit(f"{m}[{k}] = {self.expr(v, 1)};")

    def s_copy(self, depth):
        """A copy, then a write to one side: the other must not change."""
        t = self.pick([t for t in self.types if not t in PRINTABLE or t == STRING])
        src = self.lvalue(t, allow_index=False)
        if src is None:
            return self.s_decl(depth)
        b = self.body
        name = b.fresh("c")
        b.emit(f"{t} {name} = {src};")
        b.declare(Var(name, t))
        target = self.pick([name, src]) if "->" not in src else name
        self.mutate(target, t)
        b.emit(f"print({name} == {src});")
        b.emit(self.show_call(src, t))
        b.emit(self.show_call(name, t))

    def mutate(self, path: str, t: T.Type, depth=0):
        b = self.body
        if isinstance(t, T.VectorType):
            if self.chance(0.5) or depth > 2:
                b.emit(f"{path} :: {self.safe_expr(t.elem)};")
            else:
                b.emit(f"if (len({path}) == 0) {path} :: {self.safe_expr(t.elem)};")
                self.mutate(f"{path}[ix({self.small_int()}, len({path}))]", t.elem, depth + 1)
        elif isinstance(t, T.StructType):
            fn, ft = self.pick(self.structs[t.name])
            self.mutate(f"{path}->{fn}", ft, depth + 1)
        elif isinstance(t, T.MapType):
            k = self.map_key(t.key)
            x = self.r.randint(0, 3)
            if x == 0:
                b.emit(f"remove({path}, {k});")
            elif x == 1 and depth <= 2:
                b.emit(f"if (!has({path}, {k})) {path}[{k}] = {self.safe_expr(t.value)};")
                self.mutate(f"{path}[{k}]", t.value, depth + 1)
            else:
                b.emit(f"{path}[{k}] = {self.safe_expr(t.value)};")
        elif t == INT:
            b.emit(f"{path} += {self.small_int()};")
        elif t == DOUBLE:
            b.emit(f"{path} *= 2.5;")
        elif t == BOOL:
            b.emit(f"{path} = !{path};")
        else:
            b.emit(f"{path} = {self.pick(CHARS)};")

    def s_if(self, depth):
        cond = self.expr(BOOL, 2)
        self.nested(f"if ({cond})", depth)
        if self.chance(0.5):
            self.nested("else", depth)

    def s_block(self, depth):
        self.nested("", depth)

    def s_for(self, depth):
        if self.body.loops >= 2:
            return self.s_print(depth)
        i = self.new_name("i")
        n = self.r.randint(0, 5)
        step = self.pick(["+= 1", "+= 1", "+= 2"])
        header = f"for (int {i} = 0; {i} < {n}; {i} {step})"

        def setup():
            pass
        b = self.body
        b.emit(header + " {")
        b.indent += 1
        b.frames.append({i: Var(i, INT, readonly=True)})
        b.loops += 1
        b.frames.append({})
        self.block_stmts(depth - 1)
        b.frames.pop()
        b.loops -= 1
        b.frames.pop()
        b.indent -= 1
        b.emit("}")

    def s_while(self, depth):
        if self.body.loops >= 2:
            return self.s_print(depth)
        b = self.body
        w = b.fresh("w")
        n = self.r.randint(1, 5)
        b.emit(f"int {w} = 0;")
        b.declare(Var(w, INT, readonly=True))
        b.emit(f"while ({w} < {n}) {{")
        b.indent += 1
        b.emit(f"{w} += 1;")
        b.loops += 1
        b.frames.append({})
        self.block_stmts(depth - 1)
        b.frames.pop()
        b.loops -= 1
        b.indent -= 1
        b.emit("}")

    def s_break(self, depth):
        self.body.emit(f"if ({self.expr(BOOL, 1)}) break;")

    def s_continue(self, depth):
        self.body.emit(f"if ({self.expr(BOOL, 1)}) continue;")

    def s_fail(self, depth):
        """fail (SPEC 12.5): a job fails, the master ends."""
        msg = self.expr(STRING, 1)
        self.body.emit(f"if ({self.expr(BOOL, 1)}) fail({msg});")

    def s_return(self, depth):
        self.body.emit(f"if ({self.expr(BOOL, 1)}) return;")

    def s_remote(self, depth):
        b = self.body
        valued = [j for j in self.jobs if j[2] != T.VOID]
        if not self.jobs:
            return self.s_print(depth)
        k = self.r.randint(0, 4)
        if k <= 1 or not valued:
            # One job, then its result; sometimes a local call of it too.
            name, params, ret = self.pick(self.jobs)
            h = b.fresh("h")
            args = ", ".join(self.expr(pt, 1) for _, pt in params)
            b.emit(f"job<{ret}> {h} = remote {name}({args});")
            b.declare(Var(h, T.JobType(ret)))
            got = f"get({h});" if ret == T.VOID else self.show_call(f"get({h})", ret)
            if self.chance(0.4):
                # Once it has ended, error says whether get would fail.
                b.emit(f"print(wait({h}, 600.0));")
                b.emit(f"if (error({h}) == \"\") {{ {got} }} "
                       f"else {{ print(error({h})); }}")
            else:
                b.emit(got)
            if self.chance(0.3):
                b.emit(f"cancel({h});")
            b.emit(f"print(state({h}));")
        elif k == 2:
            # Several in flight, gathered in another order.
            hs = []
            for _ in range(self.r.randint(2, 4)):
                name, params, ret = self.pick(valued)
                h = b.fresh("h")
                args = ", ".join(self.expr(pt, 1) for _, pt in params)
                b.emit(f"job<{ret}> {h} = remote {name}({args});")
                b.declare(Var(h, T.JobType(ret)))
                hs.append((h, ret))
            self.r.shuffle(hs)
            for h, ret in hs:
                b.emit(self.show_call(f"get({h})", ret))
            same = [h2 for h2, t2 in hs[1:] if t2 == hs[0][1]]
            if same:
                b.emit(f"print({hs[0][0]} == {same[0]});")
        elif k == 3:
            # A copied handle is the same job.
            name, params, ret = self.pick(valued)
            h, h2 = b.fresh("h"), b.fresh("h")
            args = ", ".join(self.expr(pt, 1) for _, pt in params)
            b.emit(f"job<{ret}> {h} = remote {name}({args});")
            b.emit(f"job<{ret}> {h2} = {h};")
            b.declare(Var(h, T.JobType(ret)))
            b.declare(Var(h2, T.JobType(ret)))
            b.emit(f"print({h} == {h2});")
            b.emit(self.show_call(f"get({h2})", ret))
            b.emit(f"print(get({h}) == get({h2}));")
        else:
            if self.chance(0.03):
                h = b.fresh("h")
                ret = self.pick(valued)[2]
                b.emit(f"job<{ret}> {h};")
                b.emit(self.show_call(f"get({h})", ret))
            else:
                return self.s_remote_vec(depth)

    def s_remote_vec(self, depth):
        b = self.body
        valued = [j for j in self.jobs if j[2] != T.VOID]
        if not valued:
            return self.s_print(depth)
        name, params, ret = self.pick(valued)
        hs, i, acc = b.fresh("hs"), b.fresh("i"), b.fresh("i")
        n = self.r.randint(1, 6)
        b.emit(f"vector<job<{ret}>> {hs};")
        b.declare(Var(hs, T.VectorType(T.JobType(ret))))
        b.emit(f"for (int {i} = 0; {i} < {n}; {i} += 1) {{")
        b.frames.append({i: Var(i, INT, readonly=True)})
        args = ", ".join(self.expr(pt, 1) for _, pt in params)
        b.frames.pop()
        b.emit(f"  {hs} :: remote {name}({args});")
        b.emit("}")
        b.emit(f"for (int {acc} = {len_or(n)}; {acc} > 0; {acc} -= 1) {{")
        b.emit(f"  {self.show_call(f'get({hs}[{acc} - 1])', ret)}")
        b.emit("}")
        if n >= 2:
            b.emit(f"print({hs}[0] == {hs}[1]);")
            b.emit(f"print(state({hs}[{n - 1}]));")
        if self.chance(0.5):
            # Every job has ended: wait_any's answers no longer depend on
            # timing. Unset one handle, then drain the rest.
            none, k, count = b.fresh("h"), b.fresh("i"), b.fresh("i")
            b.emit(f"job<{ret}> {none};")
            b.emit(f"{hs}[{self.r.randrange(n)}] = {none};")
            b.emit(f"print(wait_any({hs}));")
            b.emit(f"int {count} = 0;")
            b.emit(f"for (int {k} = wait_any({hs}, 600.0); {k} >= 0; "
                   f"{k} = wait_any({hs}, 0.0)) {{ {hs}[{k}] = {none}; "
                   f"{count} += 1; }}")
            b.emit(f"print({count});")

    # ------------------------------------------------------------ places

    def walk(self, want: T.Type, lvalue: bool, allow_index: bool, depth=0):
        """A random path (variable, elements, fields) of type `want`."""
        b = self.body
        candidates = [v for v in b.vars() if not v.unset and
                      not isinstance(v.type, T.JobType) and
                      not (lvalue and v.readonly and v.type == want)]
        if not candidates:
            return None
        for _ in range(12):
            v = self.pick(candidates)
            path, t, pure = v.name, v.type, True
            for _ in range(4):
                if t == want and (self.chance(0.6) or not
                                  isinstance(t, (T.VectorType, T.StructType))):
                    if lvalue and path == v.name and v.readonly:
                        break
                    return path
                if isinstance(t, T.VectorType) and allow_index:
                    path = f"{path}[{self.index(path, lvalue, pure, depth)}]"
                    pure = False
                    t = t.elem
                elif isinstance(t, T.StructType) and self.structs[t.name]:
                    fn, t = self.pick(self.structs[t.name])
                    path = f"{path}->{fn}"
                else:
                    break
            if t == want and not (lvalue and path == v.name and v.readonly):
                return path
        return None

    def index(self, base: str, lvalue: bool, base_pure: bool, depth: int) -> str:
        if lvalue:
            # Indices of assignment targets neither fail nor print, so the
            # order between them and the target's bounds checks is unseen.
            if base_pure and self.chance(0.9):
                return f"ix({self.plain_int()}, len({base}))"
            return self.pick(["0", "1", "0", self.plain_int()])
        if not base_pure and "nested-read-order" in self.avoid:
            return self.pick(["0", "1", "0", self.plain_int()])
        if depth <= 0:
            return f"ix({self.plain_int()}, len({base}))"
        if self.chance(0.03):
            return self.expr(INT, depth - 1)
        return f"ix({self.expr(INT, depth - 1)}, len({base}))"

    def plain_int(self) -> str:
        ints = [v.name for v in self.body.vars() if v.type == INT]
        if ints and self.chance(0.6):
            return self.pick(ints)
        return str(self.r.randint(-3, 6))

    def lvalue(self, t: T.Type, allow_index=True):
        return self.walk(t, lvalue=True, allow_index=allow_index)

    # ------------------------------------------------------------ expressions

    def small_int(self) -> str:
        return str(self.r.randint(-4, 9))

    def divisor(self) -> str:
        x = self.r.random()
        if x < 0.85:
            return f"nz({self.expr(INT, 1)})"
        if x < 0.97:
            return self.pick(["1", "-1", "2", "3", "-7", "1000000007"])
        return self.expr(INT, 1)

    def shift_count(self) -> str:
        """Usually in 0..63; occasionally anything (a runtime error when
        outside)."""
        x = self.r.random()
        if x < 0.8:
            return f"ix({self.expr(INT, 1)}, 64)"
        if x < 0.94:
            return self.pick(["0", "1", "7", "31", "32", "62", "63"])
        return self.pick(["64", "-1", self.expr(INT, 1)])

    def small_vector(self, t: T.VectorType) -> str:
        """A vector expression that does not grow with its operands."""
        var = self.walk(t, lvalue=False, allow_index=False)
        if t == STRING:
            return self.pick(STRINGS + ["str(" + self.expr(INT, 0) + ")"])
        # A fresh one-element vector through a local call.
        return f"{var}" if var and self.chance(0.2) else self.vector_of(t)

    def vector_of(self, t: T.VectorType) -> str:
        # No vector literals: build one from a variable of the same type,
        # or fall back to a call that returns one, or an empty vector.
        b = self.body
        fns = [f for f in self.functions if f[2] == t]
        if fns and self.chance(0.5):
            name, params, _ = self.pick(fns)
            return f"{name}({', '.join(self.expr(pt, 0) for _, pt in params)})"
        var = self.walk(t, lvalue=False, allow_index=True)
        if var is not None:
            return var
        return self.empty(t)

    def map_key(self, t: T.Type) -> str:
        """A key of type t from a small set, so that keys meet again."""
        if t == INT:
            return self.pick(["0", "1", "2", "-1", "7", self.plain_int()])
        if t == CHAR:
            return self.pick(CHARS[:4])
        if t == BOOL:
            return self.pick(["true", "false"])
        return self.pick(STRINGS[:5] + [f"str({self.plain_int()})"])

    def empty(self, t: T.Type) -> str:
        """A variable holding a small vector (or map) built from nothing:
        usually one or two elements, sometimes none."""
        name = self.body.fresh("z")
        self.body.emit(f"{t} {name};")
        if isinstance(t, T.MapType):
            for _ in range(self.r.randint(0, 3)):
                self.body.emit(f"{name}[{self.map_key(t.key)}] = "
                               f"{self.safe_expr(t.value)};")
            self.body.declare(Var(name, t))
            return name
        if self.chance(0.97):
            values = [self.safe_expr(t.elem) for _ in range(self.r.randint(1, 2))]
            self.body.emit(f"{name} :: " + " :: ".join(values) + ";")
        self.body.declare(Var(name, t))
        return name

    def literal(self, t: T.Type) -> str:
        r = self.r
        if t == INT:
            if self.chance(0.12):
                return self.pick(BIG_INTS)
            return str(r.randint(-5, 20))
        if t == DOUBLE:
            return self.pick(DOUBLES)
        if t == BOOL:
            return self.pick(["true", "false"])
        if t == CHAR:
            return self.pick(CHARS)
        if t == STRING:
            return self.pick(STRINGS)
        if isinstance(t, T.StructType):
            return self.make_struct(t, 0)
        return self.empty(t)

    def make_struct(self, t: T.StructType, depth: int) -> str:
        args = ", ".join(self.expr(ft, max(depth - 1, 0))
                         for _, ft in self.structs[t.name])
        return f"mk_{t.name}({args})"

    def safe_expr(self, t: T.Type) -> str:
        """A value that neither fails nor prints."""
        if t == INT and self.chance(0.5):
            a = self.plain_int()
            return f"{a} {self.pick(['+', '-', '*'])} {self.small_int()}"
        var = self.walk(t, lvalue=False, allow_index=False)
        if var is not None and self.chance(0.5):
            return var
        if isinstance(t, T.StructType):
            fields = self.structs[t.name]
            return f"mk_{t.name}(" + ", ".join(self.safe_expr(ft) for _, ft in fields) + ")"
        return self.literal(t)

    def expr(self, t: T.Type, depth: int) -> str:
        if depth <= 0 or self.chance(0.3):
            return self.leaf(t, depth)
        if t == INT:
            return self.int_expr(depth)
        if t == DOUBLE:
            return self.double_expr(depth)
        if t == BOOL:
            return self.bool_expr(depth)
        if t == CHAR:
            return self.char_expr(depth)
        if isinstance(t, T.VectorType):
            return self.vector_expr(t, depth)
        if isinstance(t, T.StructType):
            k = self.r.randint(0, 3)
            if k == 0:
                return self.make_struct(t, depth)
            return self.call_or_leaf(t, depth)
        if isinstance(t, T.MapType):
            return self.call_or_leaf(t, depth)
        raise AssertionError(t)

    def leaf(self, t: T.Type, depth: int = 0) -> str:
        if self.chance(0.6):
            path = self.walk(t, lvalue=False, allow_index=True, depth=depth)
            if path is not None:
                return path
        if self.body.kind == "master" and self.chance(0.2):
            handles = [v for v in self.body.vars() if v.type == T.JobType(t)
                       and not v.unset]
            if handles:
                return f"get({self.pick(handles).name})"
        return self.literal(t)

    def call_or_leaf(self, t: T.Type, depth: int) -> str:
        fns = [f for f in self.functions + self.jobs if f[2] == t]
        if fns:
            name, params, _ = self.pick(fns)
            return f"{name}({', '.join(self.expr(pt, depth - 1) for _, pt in params)})"
        return self.leaf(t, depth - 1)

    def int_expr(self, d: int) -> str:
        k = self.r.randint(0, 16)
        e = lambda: self.expr(INT, d - 1)  # noqa: E731
        if k <= 3:
            return f"({e()} {self.pick(['+', '-', '*', '*'])} {e()})"
        if k == 4:
            return f"({e()} {self.pick(['/', '%'])} {self.divisor()})"
        if k == 5:
            return f"-({e()})"
        if k == 6:
            vt = self.pick([t for t in self.types if isinstance(t, T.VectorType)])
            return f"len({self.expr(vt, d - 1)})"
        if k == 7:
            src = self.pick([DOUBLE, CHAR, BOOL, INT])
            return f"int({self.expr(src, d - 1)})"
        if k == 8:
            return self.int_builtin(d)
        if k == 9:
            return f"tr({e()})"
        if k == 10:
            return self.text_int(d)
        if k == 11:
            return f"({e()} {self.pick(['&', '|', '^'])} {e()})"
        if k == 12:
            if self.chance(0.25):
                return f"~{e()}"
            return f"({e()} {self.pick(['<<', '>>'])} {self.shift_count()})"
        return self.call_or_leaf(INT, d)

    # SPEC 12.3: int(s), find.
    def text_int(self, d: int) -> str:
        k = self.r.randint(0, 3)
        if k == 0:
            bad = self.chance(0.03)
            return f"int({self.pick(BAD_INT_TEXTS if bad else INT_TEXTS)})"
        if k == 1:
            return f"int(str({self.expr(INT, d - 1)}))"
        vt = self.pick([t for t in self.types if isinstance(t, T.VectorType)])
        x = self.expr(vt if k == 3 else vt.elem, d - 1)
        return f"find({self.expr(vt, d - 1)}, {x})"

    def int_builtin(self, d: int) -> str:
        e = lambda: self.expr(INT, d - 1)  # noqa: E731
        name = self.pick(["abs", "min", "max"])
        if name == "abs":
            return f"abs({e()})"
        return f"{name}({e()}, {e()})"

    def double_expr(self, d: int) -> str:
        k = self.r.randint(0, 10)
        e = lambda: self.expr(DOUBLE, d - 1)  # noqa: E731
        if k <= 3:
            return f"({e()} {self.pick(['+', '-', '*', '/'])} {e()})"
        if k == 4:
            return f"double({self.expr(INT, d - 1)})"
        if k == 5:
            return f"{self.pick(_C_MATH[1])}({e()})"
        if k == 6:
            return f"{self.pick(_C_MATH[2] + ['min', 'max'])}({e()}, {e()})"
        if k == 7:
            return f"abs({e()})" if self.chance(0.5) else f"-({e()})"
        if k == 8:          # SPEC 12.3: double(s)
            if self.chance(0.5):
                bad = self.chance(0.03)
                return f"double({self.pick(BAD_DOUBLE_TEXTS if bad else DOUBLE_TEXTS)})"
            return f"double(str({e()}))"
        return self.call_or_leaf(DOUBLE, d)

    def bool_expr(self, d: int) -> str:
        k = self.r.randint(0, 9)
        if k <= 2:
            t = self.pick([INT, INT, DOUBLE, CHAR, STRING])
            op = self.pick(["<", "<=", ">", ">=", "==", "!="])
            return f"({self.expr(t, d - 1)} {op} {self.expr(t, d - 1)})"
        if k == 3:
            t = self.pick(self.types)
            op = self.pick(["==", "!="])
            return f"({self.expr(t, d - 1)} {op} {self.expr(t, d - 1)})"
        if k == 4:
            op = self.pick(["&&", "||"])
            left = self.expr(BOOL, d - 1)
            right = f"tb({self.expr(BOOL, d - 1)}, {self.r.randint(1, 99)})" \
                if self.chance(0.6) else self.expr(BOOL, d - 1)
            return f"({left} {op} {right})"
        if k == 5:
            return f"!{self.expr(BOOL, d - 1)}"
        return self.call_or_leaf(BOOL, d)

    def char_expr(self, d: int) -> str:
        k = self.r.randint(0, 4)
        if k <= 1:
            return f"char({self.expr(INT, d - 1)})"
        if k == 2:
            s = self.expr(STRING, d - 1)
            if s.startswith("\"") and s != '""':
                return f"{s}[ix({self.expr(INT, d - 1)}, len({s}))]"
            return f"char({self.expr(CHAR, d - 1)})"
        return self.call_or_leaf(CHAR, d)

    def vector_expr(self, t: T.VectorType, d: int) -> str:
        k = self.r.randint(0, 8)
        if k <= 1:
            return f"({self.expr(t, d - 1)} + {self.expr(t, d - 1)})"
        if k == 2 and t == STRING:
            src = self.pick([INT, DOUBLE, BOOL, CHAR])
            return f"str({self.expr(src, d - 1)})"
        if k == 3:
            # `v :: e` as a value: appends to v, yields a copy of it.
            var = self.walk(t, lvalue=True, allow_index=False)
            if var is not None:
                return f"({var} :: {self.expr(t.elem, d - 1)})"
        if k >= 7:
            return self.vector_builtin(t, d)
        return self.call_or_leaf(t, d)

    def vector_builtin(self, t: T.VectorType, d: int) -> str:
        """SPEC 12.3's builtins that yield a vector: slice, sort, repeat,
        split and join, on small operands (repeat's count is at most 3)."""
        k = self.r.randint(0, 4)
        if k == 0:
            # Bounds in range, but for a rare out-of-range pair.
            v = self.walk(t, lvalue=False, allow_index=True, depth=d - 1)
            if v is not None:
                if self.chance(0.03):
                    return f"slice({v}, {self.small_int()}, {self.small_int()})"
                a, b = (f"ix({self.expr(INT, d - 1)}, len({v}) + 1)"
                        for _ in range(2))
                return f"slice({v}, min({a}, {b}), max({a}, {b}))"
        if k == 1 and t.elem in (INT, DOUBLE, CHAR, STRING):
            return f"sort({self.expr(t, d - 1)})"
        if k == 2:
            n = "-1" if self.chance(0.02) else str(self.r.randint(0, 3))
            return f"repeat({self.expr(t.elem, d - 1)}, {n})"
        if k == 3 and t == T.VectorType(STRING):
            sep = '""' if self.chance(0.02) else self.pick(STRINGS[1:] + ['","'])
            return f"split({self.expr(STRING, d - 1)}, {sep})"
        if k == 4 and t == STRING:
            return f"join({self.expr(T.VectorType(STRING), d - 1)}, " \
                   f"{self.pick(STRINGS)})"
        return self.call_or_leaf(t, d)


def len_or(n: int) -> str:
    return str(n)


HELPERS = """\
int ix(int i, int n) {
  if (n <= 0) return 0;
  int r = i % n;
  if (r < 0) r += n;
  return r;
}

int nz(int x) {
  if (x == 0) return 1;
  return x;
}

int tr(int x) {
  print(x);
  return x;
}

bool tb(bool b, int tag) {
  print(tag);
  return b;
}"""


def candidate(seed: int, attempt: int, avoid=frozenset()) -> str:
    return Generator(seed * 1000 + attempt, avoid).program()


def generate(seed: int, budget: int = 200_000, avoid=frozenset()) -> str:
    """The first candidate of `seed` that msi runs within `budget` steps."""
    from tools import msi
    last = None
    for attempt in range(50):
        text = candidate(seed, attempt, avoid)
        try:
            prog = msi.typed_program(f"p{seed}.ms", text)
        except Exception as e:  # a generator bug: report it, with the program
            raise RuntimeError(f"progen produced an invalid program for seed "
                               f"{seed} (attempt {attempt}): {e}\n{text}") from e
        if msi.run_program(prog, budget=budget).status != msi.BUDGET:
            return text
        last = text
    return last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="progen", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--avoid", action="append", default=[],
                   choices=sorted(KNOWN_BUGS),
                   help="steer away from a known compiler bug")
    p.add_argument("--raw", action="store_true",
                   help="the first candidate, without checking its run time")
    args = p.parse_args(argv)
    avoid = frozenset(args.avoid)
    sys.stdout.write(candidate(args.seed, 0, avoid) if args.raw
                     else generate(args.seed, avoid=avoid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
