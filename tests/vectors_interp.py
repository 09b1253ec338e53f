"""A reference interpreter of the IR after insert-refcounts, for tests.

It runs a program's master block (remote jobs run in-process, their
arguments and results copied as the wire would) and simulates the C
runtime's memory model exactly as compiler/ir/vectors.py describes it:
vectors are shared objects with a reference count, empty vectors are None,
string literals are immortal, structs are inline values (copied bit for
bit by a load), and only the explicit retain/release/make-unique/temp/
release-after/release-var/move/return-releasing nodes (plus the
documented implicit ones: a store releases what it replaces, vec-push and
vec-concat and str() and decoded values make new references) touch counts.

So a run checks insert-refcounts semantically: the output must match the
golden .out, no vector may be used after it was freed (UseAfterFree), no
count may go below zero, and at the end every vector allocated must have
been freed (the leak check, `Interpreter.leaks()`).
"""
from __future__ import annotations

import math

from compiler.builtins import TABLE as BUILTINS
from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.surface import (Assign, Binary, Block, BoolLit, Break, Call,
                                 CharLit, CharVectorLit, Continue, DoubleLit,
                                 Empty, ExprStmt, For, FuncDecl, If, IntLit,
                                 JobStateLit, MasterDecl, Name, Remote,
                                 Return, Unary, VarDecl, While)
from compiler.ir.walk import walk
from tools import msi
from tools import msi_files

IMMORTAL = 1 << 62


class UseAfterFree(AssertionError):
    pass


class RuntimeErr(Exception):
    def __init__(self, pos, msg):
        super().__init__(f"{pos.file}:{pos.line}:{pos.col}: runtime error: {msg}")


class Vec:
    __slots__ = ("rc", "elems", "elem", "freed")

    def __init__(self, elem, elems, rc=1):
        self.rc, self.elems, self.elem, self.freed = rc, elems, elem, False

    def live(self):
        if self.freed:
            raise UseAfterFree("use of a freed vector")
        return self


class Map:
    """A counted map (SPEC 13): `entries` maps a key's Python form to
    [key value, value], in insertion order (a dict keeps it)."""
    __slots__ = ("rc", "entries", "freed")

    def __init__(self, entries, rc=1):
        self.rc, self.entries, self.freed = rc, entries, False

    def live(self):
        if self.freed:
            raise UseAfterFree("use of a freed map")
        return self


def _pykey(k):
    """A key value as a dict key: a string (a Vec or None) by its bytes."""
    if k is None or isinstance(k, Vec):
        return bytes([] if k is None else k.live().elems)
    return k


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value):
        self.value = value


def wrap(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def format_double(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    p = next(p for p in range(1, 18) if float("%.*g" % (p, x)) == x)
    return "%.*g" % (max(6, p), x)


def copy_bits(v):
    """A load: structs are inline (copied), vectors are pointers."""
    return [copy_bits(x) for x in v] if isinstance(v, list) else v


class Interpreter:
    def __init__(self, prog, source: str):
        self.source = source
        self.funcs = {d.name: d for d in prog.decls if isinstance(d, FuncDecl)}
        self.master = next(d for d in prog.decls if isinstance(d, MasterDecl))
        self.structs = V.struct_table(prog)
        self.allocated: list[Vec] = []
        # Elements (and map entries) copied because a write found its
        # vector or map shared: what moves at last uses save.
        self.cow_copies = 0
        self.out: list[str] = []
        self.err: list[str] = []             # what the master eprints
        self.clock = 0.0     # clock(): seconds slept so far
        self.count_handles = any(isinstance(n, (V.Retain, V.ReleaseVar))
                                 and isinstance(n.type, T.JobType)
                                 for n in walk(prog))

    # ------------------------------------------------------------ memory

    def new_vec(self, elem, elems):
        if not elems:
            return None
        v = Vec(elem, elems)
        self.allocated.append(v)
        return v

    def zero(self, t):
        if t in (T.INT, T.CHAR):
            return 0
        if t == T.DOUBLE:
            return 0.0
        if t == T.BOOL:
            return False
        if t == T.JOBSTATE:
            return "running"
        if isinstance(t, T.StructType):
            return [self.zero(ft) for _, ft in self.structs[t.name]]
        return None      # vectors and job handles

    def new_map(self, entries):
        m = Map(entries)
        self.allocated.append(m)
        return m

    def retain(self, v, t):
        if isinstance(t, T.MapType) and v is not None:
            if v.live().rc < IMMORTAL:
                v.rc += 1
        elif isinstance(t, T.VectorType) and v is not None:
            v.live()
            if v.rc < IMMORTAL:
                v.rc += 1
        elif isinstance(t, T.StructType):
            for x, (_, ft) in zip(v, self.structs[t.name]):
                self.retain(x, ft)

    def release(self, v, t):
        if isinstance(t, T.MapType) and v is not None:
            if v.live().rc >= IMMORTAL:
                return
            assert v.rc > 0
            v.rc -= 1
            if v.rc == 0:
                for k, x in v.entries.values():
                    self.release(k, t.key)
                    self.release(x, t.value)
                v.freed = True
        elif isinstance(t, T.VectorType) and v is not None:
            v.live()
            if v.rc >= IMMORTAL:
                return
            assert v.rc > 0
            v.rc -= 1
            if v.rc == 0:
                for x in v.elems:
                    self.release(x, v.elem)
                v.freed = True
        elif isinstance(t, T.StructType):
            for x, (_, ft) in zip(v, self.structs[t.name]):
                self.release(x, ft)

    def unique(self, v, t):
        if v is None or v.live().rc == 1:
            return v
        if isinstance(t, T.MapType):
            entries = {pk: [copy_bits(k), copy_bits(x)]
                       for pk, (k, x) in v.entries.items()}
            for k, x in entries.values():
                self.retain(k, t.key)
                self.retain(x, t.value)
            self.release(v, t)
            self.cow_copies += len(entries)
            return self.new_map(entries)
        elems = [copy_bits(x) for x in v.elems]
        self.cow_copies += len(elems)
        for x in elems:
            self.retain(x, t.elem)
        self.release(v, t)
        return self.new_vec(t.elem, elems)

    def deep_copy(self, v, t):
        """What encoding then decoding makes: fresh values, counts 1."""
        if isinstance(t, T.MapType):
            if v is None or not v.live().entries:
                return None
            return self.new_map({pk: [self.deep_copy(k, t.key),
                                      self.deep_copy(x, t.value)]
                                 for pk, (k, x) in v.entries.items()})
        if isinstance(t, T.VectorType):
            if v is None:
                return None
            return self.new_vec(t.elem, [self.deep_copy(x, t.elem) for x in v.live().elems])
        if isinstance(t, T.StructType):
            return [self.deep_copy(x, ft) for x, (_, ft) in zip(v, self.structs[t.name])]
        return v

    def leaks(self) -> int:
        return sum(1 for v in self.allocated if not v.freed)

    # ------------------------------------------------------------ running

    def run(self):
        env = {}
        self.var_types = [_var_types(self.master)]
        try:
            self.stmt(self.master.body, env)
        except _Return:
            pass

    def call(self, fn, args):
        env = {p.name: copy_bits(a) for p, a in zip(fn.params, args)}
        self.var_types.append(_var_types(fn))
        try:
            for s in fn.body.stmts:
                self.stmt(s, env)
        except _Return as r:
            return r.value
        finally:
            self.var_types.pop()
        return None

    def stmt(self, s, env):
        if isinstance(s, Block):
            for x in s.stmts:
                self.stmt(x, env)
        elif isinstance(s, VarDecl):
            env[s.name] = self.zero(s.type) if s.init is None else self.expr(s.init, env)
        elif isinstance(s, Assign):
            if s.op == "=":
                new = self.expr(s.value, env)
                old = env[s.target.name]
                env[s.target.name] = new
                self.release(old, s.target.type)
            else:
                old = env[s.target.name]
                rhs = self.expr(s.value, env)
                env[s.target.name] = self.arith(s.op[:-1], old, rhs, s.target.type, s.pos)
        elif isinstance(s, ExprStmt):
            self.expr(s.expr, env)
        elif isinstance(s, If):
            if self.expr(s.cond, env):
                self.stmt(s.then, env)
            elif s.else_ is not None:
                self.stmt(s.else_, env)
        elif isinstance(s, While):
            while self.expr(s.cond, env):
                try:
                    self.stmt(s.body, env)
                except _Break:
                    break
                except _Continue:
                    pass
        elif isinstance(s, For):
            if s.init is not None:
                self.stmt(s.init, env)
            while s.cond is None or self.expr(s.cond, env):
                try:
                    self.stmt(s.body, env)
                except _Break:
                    break
                except _Continue:
                    pass
                if s.step is not None:
                    self.stmt(s.step, env)
        elif isinstance(s, Return):
            raise _Return(None if s.value is None else self.expr(s.value, env))
        elif isinstance(s, V.ReturnReleasing):
            value = None if s.value is None else self.expr(s.value, env)
            for name in s.releases:
                self.release(env[name], self.var_types[-1][name])
            raise _Return(value)
        elif isinstance(s, V.ReleaseVar):
            self.release(env[s.name], s.type)
        elif isinstance(s, V.OwnedParam):
            pass            # passed owned by the caller
        elif isinstance(s, Break):
            raise _Break()
        elif isinstance(s, Continue):
            raise _Continue()
        elif isinstance(s, Empty):
            pass
        else:
            raise AssertionError(f"unknown statement {s}")

    # ------------------------------------------------------------ places

    def prep(self, p, env):
        """Phase 1 of a place (its operands); returns phase 2, a function
        giving (get, set) of the place."""
        if isinstance(p, V.VarAddr):
            return lambda: (lambda: env[p.name], lambda v: env.__setitem__(p.name, v))
        if isinstance(p, V.ElemAddr):
            vec = p.vec
            if isinstance(vec, V.MakeUnique):
                inner = self.prep(vec.place, env)
                read_vec = None
            elif isinstance(vec, Name):
                # Read in phase 2, as codegen does: the index cannot append
                # (else vec would be a temp), so nothing changes v before.
                inner = self.prep(V.VarAddr(name=vec.name, type=vec.type, pos=vec.pos), env)
                read_vec = None
            else:
                # A read path: g[i] is read and checked before j; when j
                # appends, vec is a temp holding g[i] (insert-refcounts).
                read_vec = self.expr(vec, env)
                inner = None
            index = self.expr(p.index, env)

            def resolve():
                if inner is not None:
                    get, put = inner()
                    v = get()
                    if isinstance(vec, V.MakeUnique):
                        v = self.unique(v, vec.type)
                        put(v)
                else:
                    v = read_vec
                n = 0 if v is None else len(v.live().elems)
                if not 0 <= index < n:
                    # eliminate-bounds-checks proved this access in bounds.
                    assert not isinstance(p.check, V.InBounds), \
                        f"in-bounds access {index} of length {n}: {p}"
                    raise RuntimeErr(p.check.pos, f"index {index} out of bounds for length {n}")
                return (lambda: v.live().elems[index],
                        lambda x: v.live().elems.__setitem__(index, x))
            return resolve
        if isinstance(p, V.MapAddr):
            m = p.map
            if isinstance(m, V.MakeUnique):
                inner, read_map = self.prep(m.place, env), None
            else:
                inner, read_map = None, self.expr(m, env)
            key = self.expr(p.key, env)

            def resolve():
                if inner is not None:
                    get, put = inner()
                    v = self.unique(get(), m.type)
                    put(v)
                else:
                    v = read_map
                entry = None if v is None else v.live().entries.get(_pykey(key))
                if entry is None:
                    raise RuntimeErr(p.check.pos,
                                     f"key {self.key_text(key, p.key.type)} not in map")
                return (lambda: entry[1], lambda x: entry.__setitem__(1, x))
            return resolve
        if isinstance(p, V.MapInsertAddr):
            inner = self.prep(p.place, env)
            key = self.expr(p.key, env)

            def resolve():
                get, put = inner()
                v = self.unique(get(), p.place.type)
                if v is None:
                    v = self.new_map({})
                put(v)
                entry = v.entries.get(_pykey(key))
                if entry is None:
                    self.retain(key, p.key.type)
                    entry = v.entries[_pykey(key)] = [key, self.zero(p.type)]
                return (lambda: entry[1], lambda x: entry.__setitem__(1, x))
            return resolve
        if isinstance(p, V.FieldAddr):
            inner = self.prep(p.base, env)

            def resolve():
                get, _ = inner()
                return (lambda: get()[p.index], lambda x: get().__setitem__(p.index, x))
            return resolve
        if isinstance(p, V.VecPush):
            inner = self.prep(p.place, env)
            value = self.expr(p.value, env)
            get, put = inner()
            v = self.unique(get(), p.type)
            if v is None:
                v = self.new_vec(p.type.elem, [value])
            else:
                v.elems.append(value)
            put(v)
            return inner
        raise AssertionError(f"unknown place {p}")

    # ------------------------------------------------------------ expressions

    def expr(self, e, env):
        if isinstance(e, (IntLit, DoubleLit, BoolLit, CharLit, JobStateLit)):
            return e.value
        if isinstance(e, CharVectorLit):
            return Vec(T.CHAR, list(e.value), rc=IMMORTAL) if e.value else None
        if isinstance(e, Name):
            return copy_bits(env[e.name])
        if isinstance(e, V.Load):
            get, _ = self.prep(e.place, env)()
            return copy_bits(get())
        if isinstance(e, V.VecPush):
            self.prep(e, env)
            return None
        if isinstance(e, V.Store):
            resolve = self.prep(e.place, env)
            value = self.expr(e.value, env)
            get, put = resolve()
            old = get()
            put(value)
            self.release(old, e.place.type)
            return None
        if isinstance(e, V.StoreOp):
            resolve = self.prep(e.place, env)
            get, put = resolve()
            old = copy_bits(get())
            pushes = any(isinstance(n, V.VecPush) for n in walk(e.value))
            if e.op == "vec-concat" and pushes:
                self.retain(old, e.place.type)    # the push may drop it
            value = self.expr(e.value, env)
            get, put = resolve()
            if e.op == "vec-concat" and pushes:
                replaced = get()
                put(self.concat(old, value, e.place.type))
                self.release(replaced, e.place.type)
                self.release(old, e.place.type)
            elif e.op == "vec-concat":
                put(self.append_all(get(), value, e.place.type))
            else:
                put(self.arith(e.op, old, value, e.place.type, e.pos))
            return None
        if isinstance(e, V.FieldGet):
            return copy_bits(self.expr(e.value, env)[e.index])
        if isinstance(e, V.VecLen):
            v = self.expr(e.vec, env)
            if isinstance(e.vec.type, T.MapType):
                return 0 if v is None else len(v.live().entries)
            return 0 if v is None else len(v.live().elems)
        if isinstance(e, V.MapHas):
            m = self.expr(e.map, env)
            key = self.expr(e.key, env)
            return m is not None and _pykey(key) in m.live().entries
        if isinstance(e, V.MapRemove):
            resolve = self.prep(e.place, env)
            key = self.expr(e.key, env)
            get, put = resolve()
            m = get()
            if m is not None and _pykey(key) in m.live().entries:
                m = self.unique(m, e.place.type)
                put(m)
                k, x = m.entries.pop(_pykey(key))
                self.release(k, e.key.type)
                self.release(x, e.place.type.value)
            return None
        if isinstance(e, (V.MapKeys, V.MapValues)):
            m = self.expr(e.map, env)
            which = 0 if isinstance(e, V.MapKeys) else 1
            items = [] if m is None else [copy_bits(kv[which])
                                          for kv in m.live().entries.values()]
            for x in items:
                self.retain(x, e.type.elem)
            return self.new_vec(e.type.elem, items)
        if isinstance(e, V.VecConcat):
            a = self.expr(e.left, env)
            b = self.expr(e.right, env)
            return self.concat(a, b, e.type)
        if isinstance(e, V.ValueEq):
            a = self.expr(e.left, env)
            b = self.expr(e.right, env)
            return self.eq(a, b, e.left.type)
        if isinstance(e, V.StringCmp):
            a = self.expr(e.left, env)
            b = self.expr(e.right, env)
            a = [] if a is None else a.live().elems
            b = [] if b is None else b.live().elems
            return (a > b) - (a < b)
        if isinstance(e, V.Retain):
            v = self.expr(e.value, env)
            self.retain(v, e.type)
            return v
        if isinstance(e, V.Release):
            self.release(self.expr(e.value, env), e.value.type)
            return None
        if isinstance(e, V.Move):
            v = env[e.name]
            env[e.name] = self.zero(e.type)
            return v
        if isinstance(e, V.Temp):
            v = self.expr(e.value, env)
            env[e.id] = (v, e.type)
            return v
        if isinstance(e, V.ReleaseAfter):
            v = self.expr(e.body, env)
            for t in e.temps:
                value, ty = env.pop(t)
                self.release(value, ty)
            return v
        if isinstance(e, Unary):
            v = self.expr(e.operand, env)
            if e.op == "!":
                return not v
            if e.op == "~":
                return ~v
            return -v if e.type == T.DOUBLE else wrap(-v)
        if isinstance(e, Binary):
            return self.binary(e, env)
        if isinstance(e, Remote):
            return self.remote(e, env)
        if isinstance(e, Call):
            return self.call_expr(e, env)
        raise AssertionError(f"unknown expression {e}")

    def concat(self, a, b, t):
        elems = [copy_bits(x) for x in ((a.live().elems if a else []) + (b.live().elems if b else []))]
        for x in elems:
            self.retain(x, t.elem)
        return self.new_vec(t.elem, elems)

    def append_all(self, a, b, t):
        """ms_vec_append_all: a (one reference, transferred) += b
        (borrowed, possibly a itself); returns the new value of a."""
        if b is None or not b.live().elems:
            return a
        if a is None:
            self.retain(b, t)                 # share b
            return b
        added = [copy_bits(x) for x in b.elems]
        for x in added:
            self.retain(x, t.elem)
        if a.live().rc == 1:
            a.elems.extend(added)
            return a
        kept = [copy_bits(x) for x in a.elems]
        self.cow_copies += len(kept)
        for x in kept:
            self.retain(x, t.elem)
        if a.rc < IMMORTAL:
            a.rc -= 1
        return self.new_vec(t.elem, kept + added)

    def key_text(self, k, t) -> str:
        if t == T.STRING:
            return msi.quoted(bytes([] if k is None else k.live().elems))
        return msi.to_text(k, t).decode("latin-1")

    def eq(self, a, b, t):
        if isinstance(t, T.MapType):
            a = {} if a is None else a.live().entries
            b = {} if b is None else b.live().entries
            return len(a) == len(b) and all(
                pk in b and self.eq(x, b[pk][1], t.value)
                for pk, (_, x) in a.items())
        if isinstance(t, T.VectorType):
            a = [] if a is None else a.live().elems
            b = [] if b is None else b.live().elems
            return len(a) == len(b) and all(self.eq(x, y, t.elem) for x, y in zip(a, b))
        if isinstance(t, T.StructType):
            return all(self.eq(x, y, ft) for x, y, (_, ft) in zip(a, b, self.structs[t.name]))
        if isinstance(t, T.JobType):
            return a is b
        return a == b

    def arith(self, op, a, b, t, pos):
        if t == T.DOUBLE:
            if op == "/":
                if b == 0.0:
                    if a == 0.0 or math.isnan(a):
                        return math.nan
                    return math.copysign(math.inf, a) * math.copysign(1.0, b)
                return a / b
            return {"+": a + b, "-": a - b, "*": a * b}[op]
        if op in ("&", "|", "^"):
            return {"&": a & b, "|": a | b, "^": a ^ b}[op]
        if op in ("<<", ">>"):
            if not 0 <= b <= 63:
                raise RuntimeErr(pos, f"shift count {b} out of range 0..63")
            return wrap(a << b) if op == "<<" else a >> b
        if op in ("/", "%") and b == 0:
            raise RuntimeErr(pos, "division by zero")
        if op == "/":
            q = abs(a) // abs(b)
            return wrap(q if (a < 0) == (b < 0) else -q)
        if op == "%":
            r = abs(a) % abs(b)
            return r if a >= 0 else -r
        return wrap({"+": a + b, "-": a - b, "*": a * b}[op])

    def binary(self, e, env):
        if e.op == "&&":
            return bool(self.expr(e.left, env)) and bool(self.expr(e.right, env))
        if e.op == "||":
            return bool(self.expr(e.left, env)) or bool(self.expr(e.right, env))
        a = self.expr(e.left, env)
        b = self.expr(e.right, env)
        if e.op in ("==", "!="):
            r = a is b if isinstance(e.left.type, T.JobType) else a == b
            return r if e.op == "==" else not r
        if e.op in ("<", "<=", ">", ">="):
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
        return self.arith(e.op, a, b, e.left.type, e.pos)

    def to_text(self, v, t) -> str:
        if t == T.BOOL:
            return "true" if v else "false"
        if t == T.DOUBLE:
            return format_double(v)
        if t == T.CHAR:
            return chr(v)
        if t == T.JOBSTATE:
            return v
        if isinstance(t, T.VectorType):
            return "" if v is None else "".join(chr(c) for c in v.live().elems)
        return str(v)

    def call_expr(self, e, env):
        args = [self.expr(a, env) for a in e.args]
        fn = self.funcs.get(e.name)
        if fn is not None:
            return self.call(fn, args)
        b = BUILTINS[e.name]
        if b.c_function is not None:
            return float(getattr(math, b.c_function)(*args))
        t = e.args[0].type if e.args else None
        return IMPLEMENTED[b.name](self, args, t, e)

    # The builtins of compiler/builtins.py that reach this IR, but for C's
    # functions: (self, argument values, the first one's type, the call).

    def builtin_print(self, args, t, e):
        self.out.append(self.to_text(args[0], t) + "\n")
        return None

    def builtin_eprint(self, args, t, e):
        self.err.append(self.to_text(args[0], t) + "\n")
        return None

    # SPEC 12.1, 12.2: no arguments and an empty stdin here; files are real.

    def builtin_args(self, args, t, e):
        return None

    def builtin_read_stdin(self, args, t, e):
        return None

    def _bytes(self, v) -> bytes:
        return b"" if v is None else bytes(v.live().elems)

    def _files(self, e, what, *args):
        try:
            return what(*args)
        except msi_files.FileFailure as f:
            raise RuntimeErr(e.pos, f.message) from None

    def builtin_read_file(self, args, t, e):
        data = self._files(e, msi_files.read_file, self._bytes(args[0]))
        return self.new_vec(T.CHAR, list(data))

    def builtin_write_file(self, args, t, e):
        self._files(e, msi_files.write_file, self._bytes(args[0]),
                    self._bytes(args[1]))
        return None

    def builtin_list_dir(self, args, t, e):
        names = self._files(e, msi_files.list_dir, self._bytes(args[0]))
        return self.new_vec(T.STRING, [self.new_vec(T.CHAR, list(n))
                                       for n in names])

    def builtin_str(self, args, t, e):
        return self.new_vec(T.CHAR, [ord(c) for c in self.to_text(args[0], t)])

    def builtin_get(self, args, t, e):
        job = args[0]
        if job["error"]:
            raise RuntimeErr(e.pos, f"job '{job['name']}' failed: {job['error']}")
        return self.deep_copy(job["result"], e.type)

    def builtin_state(self, args, t, e):
        return "failed" if args[0]["error"] else "finished"

    def builtin_cancel(self, args, t, e):
        return None

    # SPEC 12.5: jobs have ended when remote returns, so nothing waits;
    # clock() is virtual, advanced by sleep.

    def _job(self, h, e):
        if h is None:
            raise RuntimeErr(e.pos, "job handle is not set")
        return h

    def builtin_wait_any(self, args, t, e):
        handles = [] if args[0] is None else args[0].live().elems
        return next((i for i, h in enumerate(handles) if h is not None), -1)

    def builtin_wait(self, args, t, e):
        self._job(args[0], e)
        return True

    def builtin_error(self, args, t, e):
        text = self._job(args[0], e)["error"] or ""
        return self.new_vec(T.CHAR, list(text.encode())) if text else None

    def builtin_fail(self, args, t, e):
        msg = "" if args[0] is None else bytes(
            args[0].live().elems).split(b"\0", 1)[0][:4096].decode("utf-8", "replace")
        raise RuntimeErr(e.pos, msg)

    def builtin_slaves(self, args, t, e):
        return 1

    def builtin_clock(self, args, t, e):
        return self.clock

    def builtin_sleep(self, args, t, e):
        if args[0] > 0:
            self.clock += args[0]
        return None

    def builtin_int(self, args, t, e):
        if t == T.DOUBLE:
            x = args[0]
            return 0 if math.isnan(x) else max(-2**63, min(2**63 - 1, int(x)))
        if t == T.STRING:
            return self.parsed(msi.text_to_int, args[0], e)
        return int(args[0])

    def builtin_double(self, args, t, e):
        if t == T.STRING:
            return self.parsed(msi.text_to_double, args[0], e)
        return float(args[0])

    def builtin_char(self, args, t, e):
        return args[0] & 0xFF

    def builtin_abs(self, args, t, e):
        return abs(args[0]) if t == T.DOUBLE else wrap(abs(args[0]))

    def builtin_min(self, args, t, e):
        return min(args)

    def builtin_max(self, args, t, e):
        return max(args)

    # SPEC 12.3, with msi's parsers and messages. Every vector result is new
    # (count 1) and holds copies of elements, each retained, as the
    # runtime's (vecops.c, text.c) do; arguments are borrowed.

    def parsed(self, parse, s, e):
        try:
            return parse(bytes(self.elems(s)), e.pos)
        except msi.MsError as err:
            raise RuntimeErr(e.pos, err.message) from None

    def elems(self, v) -> list:
        return [] if v is None else v.live().elems

    def copied(self, elems, t):
        """A new vector of copies of `elems` (of type t), each retained."""
        elems = [copy_bits(x) for x in elems]
        for x in elems:
            self.retain(x, t)
        return self.new_vec(t, elems)

    def builtin_split(self, args, t, e):
        s, sep = (bytes(self.elems(a)) for a in args)
        if not sep:
            raise RuntimeErr(e.pos, "split with an empty separator")
        return self.new_vec(T.STRING, [self.new_vec(T.CHAR, list(p))
                                       for p in s.split(sep)])

    def builtin_join(self, args, t, e):
        sep = bytes(self.elems(args[1]))
        return self.new_vec(T.CHAR, list(sep.join(
            bytes(self.elems(p)) for p in self.elems(args[0]))))

    def builtin_find(self, args, t, e):
        v, x = self.elems(args[0]), args[1]
        if e.args[1].type == t:         # a contiguous run
            run = self.elems(x)
            for i in range(len(v) - len(run) + 1):
                if all(self.eq(a, b, t.elem) for a, b in zip(v[i:], run)):
                    return i
            return -1
        return next((i for i, y in enumerate(v) if self.eq(y, x, t.elem)), -1)

    def builtin_slice(self, args, t, e):
        v, lo, hi = self.elems(args[0]), args[1], args[2]
        if not 0 <= lo <= hi <= len(v):
            raise RuntimeErr(e.pos, f"slice(from {lo}, to {hi}) out of range "
                                    f"for length {len(v)}")
        return self.copied(v[lo:hi], t.elem)

    def builtin_sort(self, args, t, e):
        if t.elem == T.DOUBLE:
            key = lambda x: (1, 0.0) if math.isnan(x) else (0, x)  # noqa: E731
        elif t.elem == T.STRING:
            key = self.elems
        else:
            key = None
        return self.copied(sorted(self.elems(args[0]), key=key), t.elem)

    def builtin_repeat(self, args, t, e):
        x, n = args
        if n < 0:
            raise RuntimeErr(e.pos, f"repeat count {n} is negative")
        return self.copied([x] * n, t)

    def remote(self, e, env):
        args = [self.expr(a, env) for a in e.args]
        fn = self.funcs[e.name]
        # The slave tracks every vector a job makes, its decoded arguments
        # included, and frees what is left when the job fails.
        first_of_job = len(self.allocated)
        decoded = [self.deep_copy(a, p.type) for a, p in zip(args, fn.params)]
        job = {"name": e.name, "error": None, "result": None}
        saved = self.out
        self.out = []                       # a job prints on its slave
        try:
            result = self.call(fn, decoded)
            # The runtime keeps the encoded result: immortal plain data here.
            job["result"] = self._freeze(result, fn.ret)
            self.release(result, fn.ret)
        except RuntimeErr as err:
            job["error"] = str(err).replace(": runtime error:", ":")
            for v in self.allocated[first_of_job:]:
                v.freed = True
            return job
        finally:
            self.out = saved
        owned = V.owned_params(fn)          # the job released those
        for a, p in zip(decoded, fn.params):
            if p.name not in owned:
                self.release(a, p.type)
        return job

    def _freeze(self, v, t):
        if isinstance(t, T.MapType):
            if v is None:
                return None
            return Map({pk: [self._freeze(k, t.key), self._freeze(x, t.value)]
                        for pk, (k, x) in v.live().entries.items()}, rc=IMMORTAL)
        if isinstance(t, T.VectorType):
            if v is None:
                return None
            vec = Vec(t.elem, [self._freeze(x, t.elem) for x in v.live().elems], rc=IMMORTAL)
            return vec
        if isinstance(t, T.StructType):
            return [self._freeze(x, ft) for x, (_, ft) in zip(v, self.structs[t.name])]
        return v


def _var_types(decl) -> dict:
    """name -> type of every variable and parameter of one body."""
    types = {p.name: p.type for p in getattr(decl, "params", ())}
    for n in walk(decl.body):
        if isinstance(n, VarDecl):
            types[n.name] = n.type
    return types


def run_program(prog, source: str):
    """(stdout text, runtime error line or None, leaked vector count)."""
    interp = Interpreter(prog, source)
    error = None
    try:
        interp.run()
    except RuntimeErr as err:
        error = str(err) + "\n"
    return "".join(interp.out), error, (interp.leaks() if error is None else 0)


__all__ = ["run_program", "UseAfterFree", "format_double"]


# Every builtin that reaches this IR without a C function, by name
# (lower-vectors has made `len` a vec-len node).
IMPLEMENTED = {b.name: getattr(Interpreter, f"builtin_{b.name}")
               for b in BUILTINS.values()
               if b.c_function is None and b.lowering_by() != "lower-vectors"}
