"""typecheck: surface IR (strings desugared, structs resolved) -> typed IR.

Input: the IR after resolve-structs: no StringType or StringLit, every
written type well formed (known structs, `void` only as a result type).

Output: the typed IR, the same node classes with these invariants:

- every Expr has `type` set to a type of compiler/ir/types.py (string is
  VectorType(CHAR)); calls of builtins keep their name (`print`, `len`,
  `get`, `int`, ...) and have the builtin's result type (VOID for print,
  cancel and get of a job<void>);
- every local variable and parameter name is unique within its function or
  master block: a declaration whose name is already used in that function
  (by a shadowed variable or a sibling block's) is renamed `x.1`, `x.2`,
  ... together with its uses, so later passes need no scopes. The first
  declaration of a name keeps it; parameters therefore keep theirs;
- the program obeys every static rule of SPEC sections 1-6 and 11 (listed
  in docs/language.md, "Static rules and decisions"); the first violation,
  in source order within each phase, is raised as a CompileError.

Phases, in order: top-level names (duplicates, builtins, one master block),
job signatures are serializable (per declaration, before its body), bodies
(scopes, types, lvalues, returns, loops), then `remote` or a master-only
builtin reachable from a job.
Builtins (SPEC section 6) are those of a table of compiler/builtins.py
(`check` takes it as a parameter, `run` uses the language's); helpers in
typecheck_flow (reachability, serializability, master-only chains).
"""
from __future__ import annotations

import attrs

from compiler import builtins as B
from compiler.errors import CompileError, Pos, wrong_arity
from compiler.ir import types as T
from compiler.ir.surface import (
    Append, Assign, Binary, Block, BoolLit, Break, Call, CharLit,
    CharVectorLit, Continue, DoubleLit, Empty, Expr, ExprStmt, FieldAccess,
    For, FuncDecl, If, Index, IntLit, JobStateLit, MasterDecl, Name, Program,
    Remote, Return, StructDecl, Unary, VarDecl, While)
from compiler.passes import typecheck_flow as F

_LITERAL_TYPES = {IntLit: T.INT, DoubleLit: T.DOUBLE, BoolLit: T.BOOL,
                  CharLit: T.CHAR, CharVectorLit: T.STRING,
                  JobStateLit: T.JOBSTATE}

_ARITH_ERRORS = {
    "+": "cannot add {a} and {b}",
    "-": "cannot subtract {b} from {a}",
    "*": "cannot multiply {a} by {b}",
    "/": "cannot divide {a} by {b}",
}

# SPEC 12.4: bit operations take ints only.
_BIT_OPS = ("&", "|", "^", "<<", ">>")
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")

_NUMBERS = (T.INT, T.DOUBLE)
_ORDERED = (T.INT, T.DOUBLE, T.CHAR, T.STRING)


def binary_result(op: str, a: T.Type, b: T.Type, pos: Pos) -> T.Type:
    """The type of `a op b` for non-void operand types, or a CompileError at
    `pos` (the operator). Shared by Binary and compound assignment."""
    if op in _ARITH_ERRORS:
        if a == b and a in _NUMBERS:
            return a
        if op == "+" and a == b and isinstance(a, T.VectorType):
            return a
        hint = ""
        if op == "+" and T.STRING in (a, b) and (a in T.SCALARS or b in T.SCALARS):
            other = a if b == T.STRING else b
            hint = f" (convert the {other} with str(...))"
        raise CompileError(pos, _ARITH_ERRORS[op].format(a=a, b=b) + hint)
    if op == "%" or op in _BIT_OPS:
        if a == b == T.INT:
            return T.INT
        hint = ""
        if op in ("&", "|") and a == b == T.BOOL:
            hint = f" (on bools, use '{op * 2}')"
        raise CompileError(pos, f"'{op}' takes two ints, not {a} and {b}{hint}")
    if op in ("<", "<=", ">", ">="):
        if a != b:
            raise CompileError(pos, f"cannot compare {a} and {b}")
        if a not in _ORDERED:
            raise CompileError(pos, f"'{op}' cannot order {a} values "
                                    "(it takes two ints, doubles, chars or strings)")
        return T.BOOL
    if op in ("==", "!="):
        if a != b:
            raise CompileError(pos, f"cannot compare {a} and {b}")
        return T.BOOL
    if op in ("&&", "||"):
        if a == b == T.BOOL:
            return T.BOOL
        raise CompileError(pos, f"'{op}' takes two bools, not {a} and {b}")
    raise AssertionError(f"unknown binary operator {op!r}")


def _check_bit_operands(e: Binary, left: Expr, right: Expr) -> None:
    """C's trap `x & 1 == 0` parses as `x & (1 == 0)` (SPEC 12.4): when a
    bit operation's operand is a comparison, say so and how to write it."""
    for side in (left, right):
        if isinstance(side, Binary) and side.op in _COMPARISONS and (
                left.type != T.INT or right.type != T.INT):
            raise CompileError(
                e.pos, f"'{e.op}' takes two ints, not {left.type} and "
                       f"{right.type} ('{side.op}' binds tighter than "
                       f"'{e.op}': write (a {e.op} b) {side.op} c to "
                       f"compare the result)")


def _is_lvalue(e: Expr) -> bool:
    """A variable, or an element or field of an lvalue (SPEC section 4)."""
    if isinstance(e, Name):
        return True
    if isinstance(e, (Index, FieldAccess)):
        return _is_lvalue(e.base)
    return False


def _is_append_target(e: Expr) -> bool:
    """An lvalue, or another `::` (whose result is its own target)."""
    return _is_lvalue(e) or isinstance(e, Append)


def _describe_lvalue(e: Expr) -> str:
    if isinstance(e, Name):
        return f"variable '{e.name}'"
    if isinstance(e, FieldAccess):
        return f"field '{e.name}'"
    return "an element"


def _describe_non_lvalue(e: Expr) -> str:
    def what(x: Expr) -> str:
        if isinstance(x, Append):
            return "the result of '::'"
        if isinstance(x, (Call, Remote)):
            return "the result of a call"
        return "a computed value"
    if isinstance(e, (Index, FieldAccess)):
        root = e
        while isinstance(root, (Index, FieldAccess)):
            root = root.base
        part = "an element" if isinstance(e, Index) else f"field '{e.name}'"
        return f"{part} of {what(root)}"
    return what(e)


def _conversion_hint(value: Expr, want: T.Type) -> str:
    """What to write instead of a value of the wrong scalar type, for the
    usual mistake of an int where a double is wanted (SPEC 5: no implicit
    conversions)."""
    if want == T.DOUBLE and value.type == T.INT:
        if isinstance(value, IntLit):
            return f" (write {value.value}.0 or double({value.value}))"
        return " (convert with double(...))"
    if want == T.INT and value.type == T.DOUBLE:
        return " (convert with int(...))"
    return ""


# C spellings M/s lacks, called as functions: `sizeof(x)`.
_C_FUNCTIONS = {
    "sizeof": "M/s has no 'sizeof'; len(v) is the length of a vector or string",
}


@attrs.frozen
class _Context:
    """What every body check needs to know about the whole program."""
    structs: dict   # name -> StructDecl
    functions: dict  # name -> FuncDecl (functions and jobs)
    builtins: dict   # name -> compiler/builtins.py:Builtin


@attrs.define
class _Var:
    unique: str
    type: T.Type
    pos: Pos
    is_param: bool


class _BodyChecker:
    """Typechecks one function, job or master block; holds its scopes.

    One instance per body, discarded afterwards (the pass stays pure).
    """

    def __init__(self, ctx: _Context, kind: str, name: str, ret: T.Type):
        self.ctx = ctx
        self.kind = kind        # "function", "job" or "master"
        self.name = name
        self.ret = ret
        self.scopes: list[dict[str, _Var]] = []
        self.uses: dict[str, int] = {}  # source name -> declarations so far
        self.loop_depth = 0

    # ------------------------------------------------------------ scopes

    def declare(self, name: str, t: T.Type, pos: Pos, is_param: bool = False) -> str:
        scope = self.scopes[-1]
        if name in scope:
            prev = scope[name]
            if is_param:
                raise CompileError(pos, f"duplicate parameter '{name}' of {self.kind} '{self.name}'")
            if prev.is_param:
                raise CompileError(pos, f"'{name}' is already declared as a parameter "
                                        f"of {self.kind} '{self.name}'")
            raise CompileError(pos, f"'{name}' is already declared in this block "
                                    f"(at line {prev.pos.line})")
        n = self.uses.get(name, 0)
        self.uses[name] = n + 1
        unique = name if n == 0 else f"{name}.{n}"
        scope[name] = _Var(unique, t, pos, is_param)
        return unique

    def lookup(self, name: str) -> _Var | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def in_scope(self, check, *args):
        self.scopes.append({})
        try:
            return check(*args)
        finally:
            self.scopes.pop()

    # ------------------------------------------------------------ bodies

    def check_function(self, fn: FuncDecl) -> FuncDecl:
        self.scopes.append({})
        for p in fn.params:
            self.declare(p.name, p.type, p.pos, is_param=True)
        # Parameters and the outermost block share one scope (SPEC 11).
        body = attrs.evolve(fn.body, stmts=tuple(self.stmt(s) for s in fn.body.stmts))
        self.scopes.pop()
        if fn.ret != T.VOID and F.can_complete(body):
            raise CompileError(fn.pos, f"missing return: {self.kind} '{fn.name}' returns "
                                       f"{fn.ret}, but the end of its body is reachable")
        return attrs.evolve(fn, body=body)

    def check_master(self, m: MasterDecl) -> MasterDecl:
        body = self.in_scope(self.block_stmts, m.body)
        return attrs.evolve(m, body=body)

    def block_stmts(self, b: Block) -> Block:
        return attrs.evolve(b, stmts=tuple(self.stmt(s) for s in b.stmts))

    # ------------------------------------------------------------ statements

    def substmt(self, s):
        """The body of an if, while or for: a scope of its own even when it
        is not a block (so `if (c) int x;` declares nothing outside)."""
        if isinstance(s, Block):
            return self.stmt(s)
        return self.in_scope(self.stmt, s)

    def loop_body(self, s):
        self.loop_depth += 1
        try:
            return self.substmt(s)
        finally:
            self.loop_depth -= 1

    def stmt(self, s):
        if isinstance(s, Block):
            return self.in_scope(self.block_stmts, s)
        if isinstance(s, VarDecl):
            return self.var_decl(s)
        if isinstance(s, Assign):
            return self.assign(s)
        if isinstance(s, ExprStmt):
            return attrs.evolve(s, expr=self.expr(s.expr))
        if isinstance(s, If):
            cond = self.condition(s.cond, "if")
            then = self.substmt(s.then)
            else_ = None if s.else_ is None else self.substmt(s.else_)
            return attrs.evolve(s, cond=cond, then=then, else_=else_)
        if isinstance(s, While):
            cond = self.condition(s.cond, "while")
            return attrs.evolve(s, cond=cond, body=self.loop_body(s.body))
        if isinstance(s, For):
            return self.in_scope(self.for_loop, s)
        if isinstance(s, Return):
            return self.return_(s)
        if isinstance(s, (Break, Continue)):
            if self.loop_depth == 0:
                word = "break" if isinstance(s, Break) else "continue"
                raise CompileError(s.pos, f"'{word}' outside a loop")
            return s
        if isinstance(s, Empty):
            return s
        raise AssertionError(f"unknown statement {type(s).__name__}")

    def for_loop(self, s: For) -> For:
        # Runs inside the loop's own scope, which holds the init's variable.
        init = None if s.init is None else self.stmt(s.init)
        cond = None if s.cond is None else self.condition(s.cond, "for")
        step = None if s.step is None else self.stmt(s.step)
        return attrs.evolve(s, init=init, cond=cond, step=step, body=self.loop_body(s.body))

    def condition(self, c: Expr, keyword: str) -> Expr:
        c = self.value(c)
        if c.type != T.BOOL:
            raise CompileError(c.pos, f"the condition of '{keyword}' must be bool, not {c.type}")
        return c

    def var_decl(self, s: VarDecl) -> VarDecl:
        init = None
        if s.init is not None:
            # The variable's scope begins after its declaration (SPEC 11).
            init = self.value(s.init)
            if init.type != s.type:
                raise CompileError(init.pos, f"cannot initialize variable '{s.name}' of "
                                             f"type {s.type} with {init.type}"
                                             + _conversion_hint(init, s.type))
        unique = self.declare(s.name, s.type, s.pos)
        return attrs.evolve(s, name=unique, init=init)

    def assign(self, s: Assign) -> Assign:
        if not _is_lvalue(s.target):
            raise CompileError(s.target.pos, f"cannot assign to {_describe_non_lvalue(s.target)}: "
                                             "only to a variable, an element v[i] or a field s->f")
        target = self.value(s.target)
        value = self.value(s.value)
        if s.op == "=":
            if value.type != target.type:
                raise CompileError(value.pos, f"cannot assign {value.type} to "
                                              f"{_describe_lvalue(s.target)} of type {target.type}"
                                              + _conversion_hint(value, target.type))
        else:
            result = binary_result(s.op[:-1], target.type, value.type, s.pos)
            assert result == target.type, (s.op, result, target.type)
        return attrs.evolve(s, target=target, value=value)

    def return_(self, s: Return) -> Return:
        if self.kind == "master":
            if s.value is not None:
                raise CompileError(s.value.pos, "the master block cannot return a value "
                                                "(use 'return;' to end the program)")
            return s
        if s.value is None:
            if self.ret != T.VOID:
                raise CompileError(s.pos, f"{self.kind} '{self.name}' must return a "
                                          f"value of type {self.ret}")
            return s
        if self.ret == T.VOID:
            raise CompileError(s.value.pos, f"void {self.kind} '{self.name}' cannot "
                                            "return a value")
        value = self.value(s.value)
        if value.type != self.ret:
            raise CompileError(value.pos, f"cannot return {value.type} from "
                                          f"{self.kind} '{self.name}', which returns {self.ret}"
                                          + _conversion_hint(value, self.ret))
        return attrs.evolve(s, value=value)

    # ------------------------------------------------------------ expressions

    def value(self, e: Expr) -> Expr:
        """Typecheck `e` where its value is used: it may not be void."""
        e = self.expr(e)
        if e.type == T.VOID:
            assert isinstance(e, Call)
            if e.name == "get":
                raise CompileError(e.pos, "get of a job<void> has no value")
            raise CompileError(e.pos, f"'{e.name}' returns void, so its call has no value")
        return e

    def expr(self, e: Expr) -> Expr:
        """Typecheck `e`, returning it with `type` set (VOID allowed)."""
        lit = _LITERAL_TYPES.get(type(e))
        if lit is not None:
            return attrs.evolve(e, type=lit)
        if isinstance(e, Name):
            return self.name_ref(e)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Remote):
            return self.remote(e)
        if isinstance(e, Index):
            return self.index(e)
        if isinstance(e, FieldAccess):
            return self.field_access(e)
        if isinstance(e, Unary):
            return self.unary(e)
        if isinstance(e, Binary):
            left, right = self.value(e.left), self.value(e.right)
            if e.op in _BIT_OPS:
                _check_bit_operands(e, left, right)
            t = binary_result(e.op, left.type, right.type, e.pos)
            return attrs.evolve(e, left=left, right=right, type=t)
        if isinstance(e, Append):
            return self.append(e)
        raise AssertionError(f"unknown expression {type(e).__name__}")

    def name_ref(self, e: Name) -> Name:
        var = self.lookup(e.name)
        if var is None:
            if e.name in self.ctx.functions:
                raise CompileError(e.pos, f"'{e.name}' is a function, not a variable "
                                          "(functions are not values)")
            if e.name in self.ctx.builtins:
                raise CompileError(e.pos, f"'{e.name}' is a builtin function, not a "
                                          "variable (functions are not values)")
            raise CompileError(e.pos, f"undeclared variable '{e.name}'")
        return attrs.evolve(e, name=var.unique, type=var.type)

    def call_args(self, fn: FuncDecl, e) -> tuple:
        """Check the arguments of a call or remote of user function `fn`."""
        if len(e.args) != len(fn.params):
            raise wrong_arity(e.pos, fn.name, len(fn.params), len(e.args))
        args = []
        for p, a in zip(fn.params, e.args):
            a = self.value(a)
            if a.type != p.type:
                raise CompileError(a.pos, f"argument '{p.name}' of '{fn.name}' must be "
                                          f"{p.type}, not {a.type}"
                                          + _conversion_hint(a, p.type))
            args.append(a)
        return tuple(args)

    def call(self, e: Call) -> Call:
        # A call looks its name up among functions and builtins only, even
        # when a local variable has that name (SPEC 11).
        fn = self.ctx.functions.get(e.name)
        if fn is not None:
            return attrs.evolve(e, args=self.call_args(fn, e), type=fn.ret)
        builtin = self.ctx.builtins.get(e.name)
        if builtin is not None:
            if not builtin.min_arity <= len(e.args) <= builtin.arity:
                raise wrong_arity(e.pos, e.name, builtin.arity, len(e.args),
                                  fewest=builtin.min_arity)
            args = tuple(self.value(a) for a in e.args)
            t = builtin.result_type(args, [a.type for a in args])
            if builtin.lvalue_first and not _is_lvalue(e.args[0]):
                raise CompileError(e.args[0].pos, f"'{e.name}' needs a map "
                                   "variable, element or field (an lvalue), "
                                   "not a computed value")
            return attrs.evolve(e, args=args, type=t)
        hint = f" ({_C_FUNCTIONS[e.name]})" if e.name in _C_FUNCTIONS else ""
        raise CompileError(e.pos, f"unknown function '{e.name}'{hint}")

    def remote(self, e: Remote) -> Remote:
        fn = self.ctx.functions.get(e.name)
        if fn is None:
            if e.name in self.ctx.builtins:
                raise CompileError(e.pos, f"'{e.name}' is not a job (it is a builtin)")
            raise CompileError(e.pos, f"unknown job '{e.name}'")
        if not fn.is_job:
            raise CompileError(e.pos, f"'{e.name}' is not a job (only jobs can be "
                                      "called with remote)")
        return attrs.evolve(e, args=self.call_args(fn, e), type=T.JobType(fn.ret))

    def index(self, e: Index) -> Index:
        base = self.value(e.base)
        if isinstance(base.type, T.MapType):
            key = self.value(e.index)
            if key.type != base.type.key:
                raise CompileError(key.pos, f"key of {base.type} must be "
                                            f"{base.type.key}, not {key.type}")
            return attrs.evolve(e, base=base, index=key, type=base.type.value)
        if not isinstance(base.type, T.VectorType):
            raise CompileError(e.pos, f"cannot index {base.type} (not a vector, "
                                      "string or map)")
        index = self.value(e.index)
        if index.type != T.INT:
            raise CompileError(index.pos, f"index must be int, not {index.type}")
        return attrs.evolve(e, base=base, index=index, type=base.type.elem)

    def field_access(self, e: FieldAccess) -> FieldAccess:
        base = self.value(e.base)
        if not isinstance(base.type, T.StructType):
            raise CompileError(e.pos, f"cannot use '->' on {base.type} (not a struct)")
        decl = self.ctx.structs[base.type.name]
        for fd in decl.fields:
            if fd.name == e.name:
                return attrs.evolve(e, base=base, type=fd.type)
        raise CompileError(e.pos, f"struct {decl.name} has no field '{e.name}'")

    def unary(self, e: Unary) -> Unary:
        operand = self.value(e.operand)
        t = operand.type
        if e.op == "-":
            if t not in _NUMBERS:
                raise CompileError(e.pos, f"cannot negate {t}")
        elif e.op == "!":
            if t != T.BOOL:
                raise CompileError(e.pos, f"'!' takes a bool, not {t}")
        elif e.op == "~":
            if t != T.INT:
                raise CompileError(e.pos, f"'~' takes an int, not {t}")
        else:
            raise AssertionError(f"unknown unary operator {e.op!r}")
        return attrs.evolve(e, operand=operand, type=t)

    def append(self, e: Append) -> Append:
        target = self.value(e.target)
        if not _is_append_target(e.target):
            raise CompileError(e.pos, "'::' appends to a vector variable, element or "
                                      "field (an lvalue), not to a computed value")
        if not isinstance(target.type, T.VectorType):
            raise CompileError(e.pos, f"cannot append to {target.type} (not a vector)")
        value = self.value(e.value)
        if value.type != target.type.elem:
            hint = (" ('::' appends one char; concatenate strings with "
                    "+= or +)" if target.type == value.type == T.STRING else "")
            raise CompileError(e.pos, f"cannot append {value.type} to {target.type}{hint}")
        return attrs.evolve(e, target=target, value=value, type=target.type)


# ---------------------------------------------------------------- top level

def _program_start(prog: Program) -> Pos:
    file = prog.pos.file if prog.pos is not None else "<input>"
    return Pos(file, 1, 1)


def run(prog: Program) -> Program:
    return check(prog, B.TABLE)


def check(prog: Program, builtins: dict) -> Program:
    """The pass with `builtins` (name -> Builtin) as the language's."""
    structs = {d.name: d for d in prog.decls if isinstance(d, StructDecl)}
    functions: dict[str, FuncDecl] = {}
    master = None
    for d in prog.decls:
        if isinstance(d, FuncDecl):
            kind = "job" if d.is_job else "function"
            if d.name in builtins:
                raise CompileError(d.pos, f"cannot declare {kind} '{d.name}': "
                                          "that is the name of a builtin")
            if d.name in functions:
                raise CompileError(d.pos, f"'{d.name}' is already declared "
                                          f"(at line {functions[d.name].pos.line})")
            functions[d.name] = d
        elif isinstance(d, MasterDecl):
            if master is not None:
                raise CompileError(d.pos, "a program has exactly one master block "
                                          f"(the first is at line {master.pos.line})")
            master = d
    if master is None:
        raise CompileError(_program_start(prog), "the program has no master block")

    ctx = _Context(structs=structs, functions=functions, builtins=builtins)
    decls = []
    for d in prog.decls:
        if isinstance(d, FuncDecl):
            kind = "job" if d.is_job else "function"
            if d.is_job:
                F.check_job_signature(d, structs)
            d = _BodyChecker(ctx, kind, d.name, d.ret).check_function(d)
        elif isinstance(d, MasterDecl):
            d = _BodyChecker(ctx, "master", "master", T.VOID).check_master(d)
        decls.append(d)

    F.check_master_only_in_jobs([d for d in decls if isinstance(d, FuncDecl)],
                                {d.name: d for d in decls if isinstance(d, FuncDecl)},
                                builtins)
    return attrs.evolve(prog, decls=tuple(decls))
