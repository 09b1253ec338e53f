"""msi: a reference interpreter for M/s, an oracle for differential testing.

Input: the typed IR (the real pipeline run up to and including `typecheck`:
every expression has its `type`, every local name is unique within its
function). Nothing after `typecheck` is used: this is an independent,
deliberately simple implementation of SPEC.md, meant to be obviously right
rather than fast.

Values:
- int: a Python int, wrapped to signed 64 bits after every operation;
- double: a float; bool: a bool; char: an int 0..255; jobstate: its keyword;
- vector (string included) and struct: a Python list (a struct holds its
  field values in declaration order);
- job<T>: a shared `Job` object, or None for an unset handle;
- map<K, V> (SPEC 13): an `MsMap`, a dict in insertion order (Python's
  dicts keep it: replacing keeps the place, deleting and re-inserting goes
  to the end) from the key — its value, a string's as bytes — to the value.

Order of evaluation: SPEC 11, and the project's decision in
docs/language.md that in `lv = e` the bounds checks of lv come after e.
Reading `v[j]` evaluates v, then j, then checks: when j appends to v (or to
anything v goes through), the element is read from v's value as it was
before the append.

Value semantics: evaluating an expression always yields a value that no
variable shares (reading a variable, element or field of aggregate type
copies it deeply), so storing a value never needs another copy and later
writes to a variable can never be seen through an earlier read. Job handles
are the exception SPEC makes: they are shared objects, never copied.

Jobs: `remote f(args)` runs f at once, synchronously, on copies of its
arguments; what it prints is discarded (it would go to a slave's stdout);
its result, or its runtime error as `FILE:L:C: MSG`, is recorded in the Job.
Since every job has completed by the time the master can look at it,
`cancel` never changes anything here; programs whose output would depend on
timing (state of a running job, cancelling one) are not meant for msi.

Runtime errors in the master print `FILE:L:C: runtime error: MSG` to stderr
after the master's stdout so far, with exit status 1.

The world (SPEC 12.1, 12.2): `args()` and `read_stdin()` yield what
run_program is given (the CLI: its own arguments after the source, and its
stdin); files are real, in the working directory (tools/msi_files.py does
what the C runtime does); what the master `eprint`s is kept apart from
its stdout (Outcome.eprinted), and a job's eprints vanish like its prints.

CLI: `python -m tools.msi prog.ms [ARG ...]` behaves like running
`prog-master -- ARG ...`.
"""
from __future__ import annotations

import ctypes
import math
import re
import os
import sys

from compiler.builtins import TABLE as BUILTINS
from compiler.ir import types as T
from compiler.ir.surface import (
    Append, Assign, Binary, Block, BoolLit, Break, Call, CharLit,
    CharVectorLit, Continue, DoubleLit, Empty, ExprStmt, FieldAccess, For,
    FuncDecl, If, Index, IntLit, JobStateLit, MasterDecl, Name, Remote,
    Return, StructDecl, Unary, VarDecl, While)
from compiler.ir.walk import walk
from tools import msi_files

_LIBM = ctypes.CDLL("libm.so.6")
for _name, _arity in [(b.c_function, b.arity) for b in BUILTINS.values()
                      if b.c_function is not None] + [
        ("fabs", 1), ("fmin", 2), ("fmax", 2)]:
    getattr(_LIBM, _name).restype = ctypes.c_double
    getattr(_LIBM, _name).argtypes = [ctypes.c_double] * _arity

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1
MAX_DEPTH = 400  # calls deeper than this are a stack overflow
MAX_LEN = 20_000  # with a budget: longer vectors or output count as too long
BUDGET = -1  # Outcome.status of a run that exceeded its budget


def wrap(x: int) -> int:
    return ((x + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


class MsMap(dict):
    """A map value (a dict of its own class, so that copy finds it)."""


def copy(v):
    """A deep copy of a value: lists and maps are copied, everything else
    shared (scalars are immutable; job handles are shared by design)."""
    if isinstance(v, list):
        return [copy(x) for x in v]
    if isinstance(v, MsMap):
        return MsMap((k, copy(x)) for k, x in v.items())
    return v


def map_key(k):
    """A key value as the dict's key (strings are lists: bytes)."""
    return bytes(k) if isinstance(k, list) else k


def key_value(k):
    """The inverse of map_key: the M/s value of a dict key."""
    return list(k) if isinstance(k, bytes) else k


# ---------------------------------------------------------------- formatting

def format_double(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    for p in range(1, 18):
        if float("%.*g" % (p, x)) == x:
            break
    return "%.*g" % (max(6, p), x)


def to_text(v, t: T.Type) -> bytes:
    """What print writes (without the newline) and str returns."""
    if t == T.INT:
        return str(v).encode()
    if t == T.DOUBLE:
        return format_double(v).encode()
    if t == T.BOOL:
        return b"true" if v else b"false"
    if t == T.CHAR:
        return bytes([v])
    if t == T.JOBSTATE:
        return v.encode()
    if t == T.STRING:
        return bytes(v)
    raise AssertionError(f"cannot format {t}")


# ---------------------------------------------------------------- text

# SPEC 12.3's forms of int(s) and double(s), around optional whitespace.
_SPACE = b" \t\r\n"
_INT_TEXT = re.compile(rb"[+-]?[0-9]+")
_DOUBLE_TEXT = re.compile(
    rb"[+-]?(?:inf|nan|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
SHOWN_BYTES = 64    # of a string that does not convert; then "..."


def quoted(s: bytes) -> str:
    """`s` as an M/s string literal, cut after SHOWN_BYTES bytes."""
    names = {10: "\\n", 9: "\\t", 13: "\\r", 0: "\\0", 92: "\\\\", 34: '\\"'}
    out = "".join(names.get(c) or (chr(c) if 0x20 <= c < 0x7F else f"\\x{c:02x}")
                  for c in s[:SHOWN_BYTES])
    return f'"{out}"' + ("..." if len(s) > SHOWN_BYTES else "")


def text_to_int(s: bytes, pos) -> int:
    t = s.strip(_SPACE)
    if _INT_TEXT.fullmatch(t) and INT_MIN <= int(t) <= INT_MAX:
        return int(t)
    raise MsError(pos, f"cannot convert {quoted(s)} to int")


def text_to_double(s: bytes, pos) -> float:
    t = s.strip(_SPACE)
    if not _DOUBLE_TEXT.fullmatch(t):
        raise MsError(pos, f"cannot convert {quoted(s)} to double")
    return float(t)     # correctly rounded, as glibc's strtod


# ---------------------------------------------------------------- arithmetic

def int_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return wrap(q)


def int_rem(a: int, b: int) -> int:
    return wrap(a - b * int_div(a, b)) if not (a == INT_MIN and b == -1) else 0


def double_div(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a) or math.isnan(b):
        return math.nan
    negative = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
    return -math.inf if negative else math.inf


def fmin(a: float, b: float) -> float:
    """C's fmin: a NaN operand loses to a number. Signed zeros, which C
    leaves open, order as -0 < +0 (as C's Annex F calls ideal)."""
    if a == 0.0 and b == 0.0:
        return a if math.copysign(1.0, a) < 0 else b
    return _LIBM.fmin(a, b)


def fmax(a: float, b: float) -> float:
    if a == 0.0 and b == 0.0:
        return a if math.copysign(1.0, a) > 0 else b
    return _LIBM.fmax(a, b)


def double_to_int(x: float) -> int:
    if math.isnan(x):
        return 0
    if x >= 9223372036854775808.0:
        return INT_MAX
    if x <= -9223372036854775808.0:
        return INT_MIN
    return int(x)  # truncates toward zero


def _appends(node) -> bool:
    return any(isinstance(n, Append) for n in walk(node))


# ---------------------------------------------------------------- errors

class MsError(Exception):
    """A runtime error at `pos` with SPEC's message."""

    def __init__(self, pos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message

    def located(self) -> str:
        return f"{self.pos.file}:{self.pos.line}:{self.pos.col}: {self.message}"


def _as_received(text: str) -> str:
    """A job's error as the master has it: the slave's FAILURE text passes
    through ms_text_decode (runtime/c/proto.c), which turns each C0 or C1
    control character into one '?'."""
    return "".join("?" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c
                   for c in text)


class OverBudget(Exception):
    """The run took more steps, or built longer values, than allowed."""


class _Return(Exception):
    pass


class _EndMaster(Exception):
    """`return;` in the master block."""


BREAK = object()
CONTINUE = object()


class Job:
    """A job handle's target: the job's name and its outcome."""

    def __init__(self, name: str):
        self.name = name
        self.state = "running"
        self.result = None
        self.error = None  # "FILE:L:C: MSG" when failed


# ---------------------------------------------------------------- interpreter

class Interpreter:
    def __init__(self, prog, budget=None, argv=(), stdin=None):
        self.budget = budget  # statements allowed, or None
        self.argv = [bytes(a) for a in argv]      # args()
        self.stdin = stdin or (lambda: b"")      # read_stdin(): all of it
        self.stdin_done = False
        self.steps = 0
        self.structs = {}       # name -> [(field name, type)]
        self.functions = {}     # name -> FuncDecl
        self.master = None
        for d in prog.decls:
            if isinstance(d, StructDecl):
                self.structs[d.name] = [(f.name, f.type) for f in d.fields]
            elif isinstance(d, FuncDecl):
                self.functions[d.name] = d
            elif isinstance(d, MasterDecl):
                self.master = d
        self.field_index = {name: {f: k for k, (f, _) in enumerate(fields)}
                            for name, fields in self.structs.items()}
        self.out = bytearray()
        self.err = bytearray()  # what the master eprints
        self.printing = [True]  # False while a job runs (its prints vanish)
        self.clock = 0.0        # clock(): seconds slept so far
        self.depth = 0

    # ------------------------------------------------------------ values

    def zero(self, t: T.Type):
        if t == T.INT or t == T.CHAR:
            return 0
        if t == T.DOUBLE:
            return 0.0
        if t == T.BOOL:
            return False
        if t == T.JOBSTATE:
            return "running"
        if isinstance(t, T.VectorType):
            return []
        if isinstance(t, T.StructType):
            return [self.zero(ft) for _, ft in self.structs[t.name]]
        if isinstance(t, T.JobType):
            return None
        if isinstance(t, T.MapType):
            return MsMap()
        raise AssertionError(f"no zero value for {t}")

    def equal(self, a, b, t: T.Type) -> bool:
        if isinstance(t, T.VectorType):
            return len(a) == len(b) and all(
                self.equal(x, y, t.elem) for x, y in zip(a, b))
        if isinstance(t, T.StructType):
            return all(self.equal(x, y, ft) for x, y, (_, ft)
                       in zip(a, b, self.structs[t.name]))
        if isinstance(t, T.JobType):
            return a is b
        if isinstance(t, T.MapType):   # whatever the order (SPEC 13)
            return len(a) == len(b) and all(
                k in b and self.equal(x, b[k], t.value) for k, x in a.items())
        return a == b  # doubles by IEEE rules (nan != nan, -0 == 0)

    # ------------------------------------------------------------ running

    def run_master(self):
        env = {}
        try:
            self.block(self.master.body, env)
        except _EndMaster:
            pass

    def call(self, fn: FuncDecl, args: list, pos):
        if self.depth >= MAX_DEPTH:
            raise MsError(pos, "stack overflow")
        env = {p.name: a for p, a in zip(fn.params, args)}
        self.depth += 1
        try:
            self.block(fn.body, env)
        except _Return as r:
            return r.args[0]
        finally:
            self.depth -= 1
        return None

    def run_job(self, fn: FuncDecl, args: list, pos) -> Job:
        job = Job(fn.name)
        saved_depth = self.depth
        self.depth = 0
        self.printing.append(False)
        try:
            job.result = self.call(fn, args, pos)
            job.state = "finished"
        except MsError as e:
            job.state = "failed"
            job.error = _as_received(e.located())
        finally:
            self.printing.pop()
            self.depth = saved_depth
        return job

    # ------------------------------------------------------------ statements

    def block(self, b: Block, env):
        for s in b.stmts:
            r = self.stmt(s, env)
            if r is not None:
                return r
        return None

    def stmt(self, s, env):
        if self.budget is not None:
            self.steps += 1
            if (self.steps > self.budget
                    or len(self.out) + len(self.err) > MAX_LEN * 10):
                raise OverBudget()
        k = type(s)
        if k is ExprStmt:
            if type(s.expr) is Append:
                self.append(s.expr, env)  # its value is unused: no copy
            else:
                self.expr(s.expr, env)
            return None
        if k is VarDecl:
            env[s.name] = self.zero(s.type) if s.init is None else self.expr(s.init, env)
            return None
        if k is Assign:
            self.assign(s, env)
            return None
        if k is Block:
            return self.block(s, env)
        if k is If:
            if self.expr(s.cond, env):
                return self.stmt(s.then, env)
            if s.else_ is not None:
                return self.stmt(s.else_, env)
            return None
        if k is While:
            while self.expr(s.cond, env):
                r = self.stmt(s.body, env)
                if r is BREAK:
                    break
                if r is not None and r is not CONTINUE:
                    return r
            return None
        if k is For:
            if s.init is not None:
                self.stmt(s.init, env)
            while s.cond is None or self.expr(s.cond, env):
                r = self.stmt(s.body, env)
                if r is BREAK:
                    break
                if r is not None and r is not CONTINUE:
                    return r
                if s.step is not None:
                    self.stmt(s.step, env)
            return None
        if k is Return:
            if self.depth == 0:
                raise _EndMaster()
            raise _Return(None if s.value is None else self.expr(s.value, env))
        if k is Break:
            return BREAK
        if k is Continue:
            return CONTINUE
        if k is Empty:
            return None
        raise AssertionError(f"unknown statement {k.__name__}")

    # ------------------------------------------------------------ places

    def indices(self, lv, env) -> list:
        """Evaluate the indices of lvalue `lv`, outermost first."""
        if isinstance(lv, Name):
            return []
        if isinstance(lv, Index):
            found = self.indices(lv.base, env)
            found.append(self.expr(lv.index, env))
            return found
        if isinstance(lv, FieldAccess):
            return self.indices(lv.base, env)
        raise AssertionError(f"not an lvalue: {type(lv).__name__}")

    def locate(self, lv, env, idx: list, insert: bool = False):
        """(container, key) of lvalue `lv`, consuming the pre-evaluated
        indices `idx` and checking bounds and keys from the outside in.
        `insert`: lv is the whole target of `=`, whose map key may be
        absent (SPEC 13)."""
        if isinstance(lv, Name):
            return env, lv.name
        container, key = self.locate(lv.base, env, idx)
        base = container[key]
        if isinstance(lv, Index):
            i = idx.pop(0)
            if isinstance(base, MsMap):
                k = map_key(i)
                if not insert:
                    self.check_key(lv, i, base)
                return base, k
            self.check(lv, i, base)
            return base, i
        return base, self.field_index[lv.base.type.name][lv.name]

    def check_key(self, node: Index, k, m: MsMap):
        if map_key(k) not in m:
            t = node.base.type.key
            text = quoted(bytes(k)) if t == T.STRING else to_text(k, t).decode(
                "latin-1")
            raise MsError(node.pos, f"key {text} not in map")

    def check(self, node: Index, i: int, vec: list):
        if not 0 <= i < len(vec):
            raise MsError(node.pos, f"index {i} out of bounds for length {len(vec)}")

    def assign(self, s: Assign, env):
        idx = self.indices(s.target, env)
        if s.op == "=":
            value = self.expr(s.value, env)
            container, key = self.locate(s.target, env, idx, insert=True)
            container[key] = value
            return
        container, key = self.locate(s.target, env, idx)
        old = copy(container[key])  # read before e, which may append to it
        value = self.expr(s.value, env)
        container[key] = self.arith(s.op[:-1], old, value, s.target.type, s.pos)

    def append_place(self, e, env) -> list:
        """The vector that `::` appends to: an lvalue's or another `::`'s."""
        if isinstance(e, Append):
            return self.append(e, env)
        idx = self.indices(e, env)
        container, key = self.locate(e, env, idx)
        return container[key]

    def append(self, e: Append, env) -> list:
        vec = self.append_place(e.target, env)
        value = self.expr(e.value, env)  # already a fresh copy
        vec.append(value)
        if self.budget is not None and len(vec) > MAX_LEN:
            raise OverBudget()
        return vec

    # ------------------------------------------------------------ expressions

    def read(self, e, env):
        """The value of `e`, possibly shared with a variable (no copy)."""
        k = type(e)
        if k is Name:
            return env[e.name]
        if k is Index:
            if _appends(e.index):
                # SPEC 11: v is evaluated before j; a copy, so that j's
                # append (which changes lists in place) cannot change it.
                vec = self.expr(e.base, env)
            else:
                vec = self.read(e.base, env)
            i = self.expr(e.index, env)
            if isinstance(vec, MsMap):
                self.check_key(e, i, vec)
                return vec[map_key(i)]
            self.check(e, i, vec)
            return vec[i]
        if k is FieldAccess:
            base = self.read(e.base, env)
            return base[self.field_index[e.base.type.name][e.name]]
        return self.expr(e, env)

    def expr(self, e, env):
        """The value of `e`, shared with no variable."""
        k = type(e)
        if k is IntLit or k is DoubleLit or k is BoolLit or k is CharLit \
                or k is JobStateLit:
            return e.value
        if k is CharVectorLit:
            return list(e.value)
        if k is Name or k is Index or k is FieldAccess:
            return copy(self.read(e, env))
        if k is Binary:
            return self.binary(e, env)
        if k is Unary:
            v = self.expr(e.operand, env)
            if e.op == "!":
                return not v
            if e.op == "~":
                return ~v  # -v - 1: always in range
            return wrap(-v) if e.type == T.INT else -v
        if k is Call:
            return self.call_expr(e, env)
        if k is Remote:
            fn = self.functions[e.name]
            args = [self.expr(a, env) for a in e.args]
            return self.run_job(fn, args, e.pos)
        if k is Append:
            return copy(self.append(e, env))
        raise AssertionError(f"unknown expression {k.__name__}")

    def binary(self, e: Binary, env):
        op = e.op
        if op == "&&":
            return bool(self.expr(e.left, env)) and bool(self.expr(e.right, env))
        if op == "||":
            return bool(self.expr(e.left, env)) or bool(self.expr(e.right, env))
        a = self.expr(e.left, env)
        b = self.expr(e.right, env)
        t = e.left.type
        if op == "==":
            return self.equal(a, b, t)
        if op == "!=":
            return not self.equal(a, b, t)
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        return self.arith(op, a, b, t, e.pos)

    def arith(self, op: str, a, b, t: T.Type, pos):
        if isinstance(t, T.VectorType):
            assert op == "+"
            if self.budget is not None and len(a) + len(b) > MAX_LEN:
                raise OverBudget()
            return a + b
        if t == T.INT:
            if op == "+":
                return wrap(a + b)
            if op == "-":
                return wrap(a - b)
            if op == "*":
                return wrap(a * b)
            if op == "&":
                return a & b  # Python's ints are two's complement here
            if op == "|":
                return a | b
            if op == "^":
                return a ^ b
            if op in ("<<", ">>"):
                if not 0 <= b <= 63:
                    raise MsError(pos, f"shift count {b} out of range 0..63")
                return wrap(a << b) if op == "<<" else a >> b  # floors
            if b == 0:
                raise MsError(pos, "division by zero")
            return int_div(a, b) if op == "/" else int_rem(a, b)
        if t == T.DOUBLE:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return double_div(a, b)
        raise AssertionError(f"operator {op} on {t}")

    # ------------------------------------------------------------ calls

    def call_expr(self, e: Call, env):
        fn = self.functions.get(e.name)
        if fn is not None:
            args = [self.expr(a, env) for a in e.args]
            return self.call(fn, args, e.pos)
        b = BUILTINS[e.name]
        if b.name == "remove":   # its map is a place (SPEC 13)
            idx = self.indices(e.args[0], env)
            k = map_key(self.expr(e.args[1], env))
            container, key = self.locate(e.args[0], env, idx)
            container[key].pop(k, None)
            return None
        if b.name in ("len", "print", "eprint", "keys", "values"):
            args = [self.read(e.args[0], env)]   # one argument, only read
        elif b.name == "has":
            args = [self.read(e.args[0], env), self.expr(e.args[1], env)]
        else:
            args = [self.expr(a, env) for a in e.args]
        ts = [a.type for a in e.args]
        if b.c_function is not None:
            return getattr(_LIBM, b.c_function)(*args)
        return IMPLEMENTED[b.name](self, args, ts, e)

    # The builtins of compiler/builtins.py, but for those that are C's
    # functions: (self, argument values, argument types, the call).

    def builtin_print(self, args, ts, e):
        if self.printing[-1]:
            self.out += to_text(args[0], ts[0]) + b"\n"
        return None

    def builtin_eprint(self, args, ts, e):
        if self.printing[-1]:
            self.err += to_text(args[0], ts[0]) + b"\n"
        return None

    # SPEC 12.1, 12.2

    def builtin_args(self, args, ts, e):
        return [list(a) for a in self.argv]

    def builtin_read_stdin(self, args, ts, e):
        if self.stdin_done:
            return []
        self.stdin_done = True
        return list(self.stdin())

    def _files(self, e, what, *args):
        try:
            return what(*args)
        except msi_files.FileFailure as f:
            raise MsError(e.pos, f.message) from None

    def builtin_read_file(self, args, ts, e):
        return list(self._files(e, msi_files.read_file, bytes(args[0])))

    def builtin_write_file(self, args, ts, e):
        self._files(e, msi_files.write_file, bytes(args[0]), bytes(args[1]))
        return None

    def builtin_list_dir(self, args, ts, e):
        return [list(n) for n in self._files(e, msi_files.list_dir,
                                             bytes(args[0]))]

    def builtin_len(self, args, ts, e):
        return len(args[0])

    # SPEC 13
    def builtin_has(self, args, ts, e):
        return map_key(args[1]) in args[0]

    def builtin_remove(self, args, ts, e):
        raise AssertionError("remove is a place operation (call_expr)")

    def builtin_keys(self, args, ts, e):
        return [key_value(k) for k in args[0]]

    def builtin_values(self, args, ts, e):
        return [copy(x) for x in args[0].values()]

    def builtin_str(self, args, ts, e):
        return list(to_text(args[0], ts[0]))

    def builtin_int(self, args, ts, e):
        if ts[0] == T.DOUBLE:
            return double_to_int(args[0])
        if ts[0] == T.STRING:
            return text_to_int(bytes(args[0]), e.pos)
        return int(args[0])

    def builtin_double(self, args, ts, e):
        if ts[0] == T.STRING:
            return text_to_double(bytes(args[0]), e.pos)
        return float(args[0])

    def builtin_char(self, args, ts, e):
        return args[0] & 255

    def _job(self, args, e) -> "Job":
        if args[0] is None:
            raise MsError(e.pos, "job handle is not set")
        return args[0]

    def builtin_state(self, args, ts, e):
        return self._job(args, e).state

    def builtin_cancel(self, args, ts, e):
        job = self._job(args, e)
        if job.state == "running":
            job.state = "cancelled"
        return None

    def builtin_get(self, args, ts, e):
        job = self._job(args, e)
        if job.state == "failed":
            raise MsError(e.pos, f"job '{job.name}' failed: {job.error}")
        if job.state == "cancelled":
            raise MsError(e.pos, f"job '{job.name}' was cancelled")
        return copy(job.result)

    # SPEC 12.5. Every job has ended by the time the master sees its
    # handle, so nothing waits; the clock is virtual, advanced by sleep
    # alone, and the interpreter counts as one slave.

    def builtin_wait_any(self, args, ts, e):
        return next((i for i, j in enumerate(args[0]) if j is not None), -1)

    def builtin_wait(self, args, ts, e):
        return self._job(args, e).state != "running"

    def builtin_error(self, args, ts, e):
        job = self._job(args, e)
        if job.state == "failed":
            return list(job.error.encode())
        if job.state == "cancelled":
            return list(b"cancelled")
        return []

    def builtin_fail(self, args, ts, e):
        # As the runtime: the message up to its first NUL, at most 4,096
        # bytes (docs/language.md).
        msg = bytes(args[0]).split(b"\0", 1)[0][:4096]
        raise MsError(e.pos, msg.decode("utf-8", "replace"))

    def builtin_slaves(self, args, ts, e):
        return 1

    def builtin_clock(self, args, ts, e):
        return self.clock

    def builtin_sleep(self, args, ts, e):
        if args[0] > 0:     # NaN and negative durations count as 0
            self.clock += args[0]
        return None

    def builtin_abs(self, args, ts, e):
        if ts[0] == T.INT:
            return wrap(abs(args[0]))
        return _LIBM.fabs(args[0])

    def builtin_min(self, args, ts, e):
        a, b = args
        return min(a, b) if ts[0] == T.INT else fmin(a, b)

    def builtin_max(self, args, ts, e):
        a, b = args
        return max(a, b) if ts[0] == T.INT else fmax(a, b)

    # SPEC 12.3: text, numbers and vectors. Arguments are fresh copies, so
    # results may hold them; error messages as docs/language.md gives them.

    def _long(self, n: int) -> None:
        if self.budget is not None and n > MAX_LEN:
            raise OverBudget()

    def builtin_split(self, args, ts, e):
        s, sep = bytes(args[0]), bytes(args[1])
        if not sep:
            raise MsError(e.pos, "split with an empty separator")
        return [list(piece) for piece in s.split(sep)]

    def builtin_join(self, args, ts, e):
        return list(bytes(args[1]).join(bytes(p) for p in args[0]))

    def builtin_find(self, args, ts, e):
        v, x = args
        vt = ts[0]
        if ts[1] == vt:         # a contiguous run
            for i in range(len(v) - len(x) + 1):
                if self.equal(v[i:i + len(x)], x, vt):
                    return i
            return -1
        for i, y in enumerate(v):
            if self.equal(y, x, vt.elem):
                return i
        return -1

    def builtin_slice(self, args, ts, e):
        v, lo, hi = args
        if not 0 <= lo <= hi <= len(v):
            raise MsError(e.pos, f"slice(from {lo}, to {hi}) out of range "
                                 f"for length {len(v)}")
        return v[lo:hi]

    def builtin_sort(self, args, ts, e):
        if ts[0].elem == T.DOUBLE:      # NaNs after every number
            return sorted(args[0], key=lambda x: (1, 0.0) if math.isnan(x)
                          else (0, x))
        return sorted(args[0])          # stable; strings by byte

    def builtin_repeat(self, args, ts, e):
        x, n = args
        if n < 0:
            raise MsError(e.pos, f"repeat count {n} is negative")
        self._long(n)
        return [copy(x) for _ in range(n)]


# Every builtin without a C function, by name.
IMPLEMENTED = {b.name: getattr(Interpreter, f"builtin_{b.name}")
               for b in BUILTINS.values() if b.c_function is None}


# ---------------------------------------------------------------- entry points

class Outcome:
    """What running a program's master produced: `stderr` is the runtime
    error line (or ""), `eprinted` what the master eprinted before."""

    def __init__(self, stdout: bytes, stderr: str, status: int,
                 eprinted: bytes = b""):
        self.stdout = stdout
        self.stderr = stderr
        self.status = status
        self.eprinted = eprinted


def typed_program(path: str, text: str):
    from compiler.pipeline import Source, run_pipeline
    prog, _ = run_pipeline(Source(path, text), stop_after="typecheck")
    return prog


def run_program(prog, budget=None, argv=(), stdin=None) -> Outcome:
    """Run the master of a typed program; never raises for M/s errors.
    With a budget (of statements executed), a run that exceeds it or builds
    values or output longer than MAX_LEN ends with status BUDGET. `argv`:
    the program's arguments (bytes); `stdin`: a function yielding all of
    the master's standard input."""
    interp = Interpreter(prog, budget, argv, stdin)
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 50 * MAX_DEPTH + 1000))
    try:
        interp.run_master()
    except MsError as e:
        return Outcome(bytes(interp.out),
                       f"{e.pos}: runtime error: {e.message}\n", 1,
                       bytes(interp.err))
    except OverBudget:
        return Outcome(bytes(interp.out), "", BUDGET, bytes(interp.err))
    finally:
        sys.setrecursionlimit(old_limit)
    return Outcome(bytes(interp.out), "", 0, bytes(interp.err))


def run_source(path: str, text: str, argv=(), stdin=None) -> Outcome:
    return run_program(typed_program(path, text), argv=argv, stdin=stdin)


def main(argv=None) -> int:
    import argparse
    from compiler.errors import CompileError
    p = argparse.ArgumentParser(prog="msi", description=__doc__.split("\n")[0])
    p.add_argument("source")
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="the program's arguments, its args()")
    args = p.parse_args(argv)
    with open(args.source, encoding="utf-8") as f:
        text = f.read()
    try:
        prog = typed_program(args.source, text)
    except CompileError as e:
        sys.stderr.write(f"{e.pos}: error: {e.message}\n")
        return 1
    outcome = run_program(prog, argv=[os.fsencode(a) for a in args.args],
                          stdin=sys.stdin.buffer.read)
    sys.stdout.buffer.write(outcome.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(outcome.eprinted)
    sys.stderr.write(outcome.stderr)
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
