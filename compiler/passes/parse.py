"""parse: source text -> surface IR (compiler/ir/surface.py).

Input: a `pipeline.Source` (path and text). Output: a `surface.Program` with
every declaration in source order, every expression untyped (`type` None),
children in tuples, string types as `StringType` and string literals as
`StringLit` (desugar-strings rewrites both).

How: the PEG grammar in compiler/syntax/grammar.peg is matched by
parsimonious; compiler/syntax/lexical.py tokenizes the same text to find
lexical errors and decode literals. The AST is then built top-down from the parse tree by rule name.
Binary operators are parsed as one flat list and grouped here by the
precedence table of SPEC sections 5 and 12.4 (all left-associative; `::`
lowest).

Syntax decisions the grammar makes (the later passes check the rest):
- any expression is accepted as an assignment target or as the target of
  `::`; typecheck decides what is an lvalue;
- calls are by name only (`f(...)`, and `int(...)`, `double(...)`,
  `char(...)` which become Call(name="int"...)); `remote` must be followed
  by `name(args)`;
- a dangling `else` belongs to the nearest `if`.

Positions (1-based line and column, a tab counting as one column):
Binary, Append, Unary and Assign at their operator; Index at its `[`;
FieldAccess at its `->`; Call at the callee's name (the keyword for
conversions); Remote at `remote`; other expressions at their first token
(a parenthesized expression has its inner expression's position).
Statements at their first token, except Assign (its operator). Declarations
(StructDecl, FieldDecl, FuncDecl, Param, VarDecl) at their name; MasterDecl
at `master`; Program at 1:1.

Errors (CompileError, SPEC section 7): the first lexical error, or the first
syntax error, whichever comes first in the text. A syntax error is reported
where the grammar got furthest: "expected X, found 'tok'" at the offending
token, "unexpected end of file, expected X" at the end; a missing ';' is
reported just after the token it should follow ("expected ';' after
expression"), as clang does. Nesting deeper than MAX_NESTING brackets is
"nested too deeply", never a RecursionError.
"""
from __future__ import annotations

import ast
import bisect
import functools
import importlib.resources
import re
import sys
from collections import defaultdict
from contextlib import contextmanager

from parsimonious.grammar import Grammar

from compiler.syntax import lexical
from compiler.errors import CompileError, Pos
from compiler.ir import surface as S
from compiler.ir import types as T
from compiler.ir.walk import children

# Deepest nesting of ( [ { that the parser accepts. Each level costs a few
# dozen Python frames in the packrat parser; the limit keeps that well inside
# the recursion limit set while parsing.
MAX_NESTING = 256
_RECURSION_LIMIT = 30000

# Deepest tree of nodes a program may build (an operator chain without
# brackets is one level per operator: `1+1+...+1` with n terms is n deep;
# an `else if` chain one level per branch). Every later pass, checker and
# printer recurses over the tree; pipeline.RECURSION_LIMIT is set so that
# they all handle twice this depth.
MAX_DEPTH = 50_000

# Binary operator precedence, SPEC sections 5 and 12.4 (higher binds
# tighter): C's order, with `::` below everything.
PRECEDENCE = {
    "::": 1, "||": 2, "&&": 3, "|": 4, "^": 5, "&": 6, "==": 7, "!=": 7,
    "<": 8, "<=": 8, ">": 8, ">=": 8, "<<": 9, ">>": 9,
    "+": 10, "-": 10, "*": 11, "/": 11, "%": 11,
}

_BASIC_TYPES = {
    "int": T.INT, "double": T.DOUBLE, "bool": T.BOOL, "char": T.CHAR,
    "string": T.StringType(), "void": T.VOID, "jobstate": T.JOBSTATE,
}


# A token rule of grammar.peg: `NAME = "literal" _` or `NAME = ~r"regex" _`.
_TOKEN_RULE = re.compile(
    r"""^([A-Z][A-Z_]*)( += )(~?r?"[^\n]*"|~?r?'[^\n]*') _$""", re.M)
_TRIVIA_RULE = re.compile(r"""^_ += (~r"[^\n]*")$""", re.M)


def fold_token_rules(text: str) -> str:
    """Rewrite each token rule `X = <literal or regex> _` of the grammar text
    into one regex `X = ~"(?P<t>...)<trivia>"` that also skips the trailing
    whitespace and comments.

    The two forms match exactly the same text; the folded one makes a
    third fewer rule invocations (parsimonious spends its time there). The
    token's own text is the regex group `t`.
    """
    trivia = ast.literal_eval(_TRIVIA_RULE.search(text).group(1)[1:])

    def fold(m):
        lit = m.group(3)
        if lit.startswith("~"):
            pattern = ast.literal_eval(lit[1:])
        else:
            pattern = re.escape(ast.literal_eval(lit))
        return f"{m.group(1)}{m.group(2)}~{f'(?P<t>{pattern}){trivia}'!r}"

    return _TOKEN_RULE.sub(fold, text)


@functools.lru_cache(maxsize=1)
def grammar() -> Grammar:
    text = (importlib.resources.files("compiler.syntax") / "grammar.peg").read_text(
        encoding="utf-8")
    return Grammar(fold_token_rules(text))


def run(source) -> S.Program:
    """Parse `source` (a pipeline.Source) into a surface Program."""
    text = source.text
    lexed = lexical.tokenize(text)
    where = _Locator(source.path, text)
    lex_error = lexed.error
    _check_nesting(lexed.tokens, where)
    failures = _Failures(text)
    with _recursion_limit(_RECURSION_LIMIT):
        try:
            tree = grammar()["program"].match_core(
                text, 0, defaultdict(dict), failures)
        except RecursionError:
            # Statements nest without brackets (`if (a) if (b) ...`); the
            # furthest failure is close to where the parser had got to.
            raise CompileError(where(max(failures.pos, 0)),
                               "program nested too deeply") from None
        if lex_error is not None and (
                tree is not None or lex_error.offset <= failures.pos
                or not lexed.tokens or lexed.tokens[-1].end <= failures.pos):
            # The lexical error comes first, or lies in the very token where
            # the grammar failed.
            raise CompileError(where(lex_error.offset), lex_error.message)
        if tree is None:
            raise _syntax_error(failures, lexed.tokens, text, where)
        values = {t.start: t.value for t in lexed.tokens
                  if t.value is not None}
        try:
            prog = _Builder(where, values).program(tree)
        except RecursionError:
            raise CompileError(where(0), "program nested too deeply") from None
    _check_depth(prog)
    return prog


def _check_depth(prog: S.Program) -> None:
    """A CompileError at the first node (in source order) deeper than
    MAX_DEPTH, so that no later pass meets a tree too deep to recurse on."""
    stack = [(prog, 0, 0)]  # (node, depth, expressions on the way down)
    while stack:
        node, depth, exprs = stack.pop()
        if depth > MAX_DEPTH:
            # Mostly expressions on the way down: a long operator chain;
            # mostly statements: an `else if` chain, say.
            what = "expression" if 2 * exprs > depth else "statement"
            raise CompileError(node.pos, f"{what} nested too deeply (more "
                                         f"than {MAX_DEPTH} levels)")
        inner = exprs + isinstance(node, S.Expr)
        stack.extend((c, depth + 1, inner)
                     for c in reversed(list(children(node))))


# ---------------------------------------------------------------- positions

class _Locator:
    """Offset -> Pos, by binary search over line starts."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.starts = [0]
        i = text.find("\n")
        while i >= 0:
            self.starts.append(i + 1)
            i = text.find("\n", i + 1)

    def __call__(self, offset: int) -> Pos:
        line = bisect.bisect_right(self.starts, offset)
        return Pos(self.path, line, offset - self.starts[line - 1] + 1)


@contextmanager
def _recursion_limit(limit: int):
    """Parsimonious matches recursively; nested programs need deep stacks.

    Raised only for the duration of the parse and restored afterwards.
    Python 3.11 runs Python-to-Python calls without growing the C stack, so
    this is safe.
    """
    old = sys.getrecursionlimit()
    if old >= limit:
        yield
        return
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _check_nesting(tokens, where) -> None:
    depth = 0
    for tok in tokens:
        if tok.kind != "punct":
            continue
        if tok.text in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                raise CompileError(
                    where(tok.start),
                    f"nested too deeply (more than {MAX_NESTING} levels "
                    "of brackets)")
        elif tok.text in (")", "]", "}"):
            depth = max(0, depth - 1)


# ---------------------------------------------------------------- syntax errors

class _Failures:
    """Stands in for parsimonious's ParseError while matching.

    Parsimonious sets `error.expr` and then `error.pos` whenever a named rule
    fails at or beyond the furthest position so far; this records *every*
    named rule that failed at the furthest position, in order, so the
    message can say all that was expected there.
    """

    def __init__(self, text: str):
        self.text = text
        self.expr = None
        self._pos = -1
        self.failed: list = []

    @property
    def pos(self) -> int:
        return self._pos

    @pos.setter
    def pos(self, value: int) -> None:
        if value > self._pos:
            self._pos = value
            self.failed = [self.expr]
        else:
            self.failed.append(self.expr)


# What each named rule stands for in "expected ..."; rules not listed are
# never mentioned (operators that might have continued an expression, ...).
_DESCRIPTIONS = {
    "top_decl": "top-level declaration",
    "statement": "statement",
    "expr": "expression", "unary": "expression", "postfix": "expression",
    "primary": "expression",
    "type": "type",
    "NAME": "identifier",
    "LPAREN": "'('", "PARAMS_LPAREN": "'('", "REMOTE_LPAREN": "'('",
    "CONV_LPAREN": "'('",
    "RPAREN": "')'",
    "LBRACE": "'{'", "RBRACE": "'}'", "RBRACK": "']'",
    "COMMA": "','", "LT": "'<'", "GT": "'>'",
    "SEMI": "';'",
}

# Semicolons that end something: "expected ';' after ...".
_SEMI_CONTEXT = {
    "SEMI_FIELD": "after field declaration",
    "SEMI_FOR": "in 'for' statement",
    "SEMI_RETURN": "after return statement",
    "SEMI_BREAK": "after 'break'",
    "SEMI_CONTINUE": "after 'continue'",
    "SEMI_ASSIGN": "after assignment",
    "SEMI_EXPR": "after expression",
    "SEMI_DECL": "after declaration",
}

# A description that was expected makes these redundant: they are ways of
# starting the same thing.
_SUBSUMES = {
    "expression": {"'('", "identifier"},
    "statement": {"'{'", "';'", "expression", "type", "identifier", "'('"},
    "top-level declaration": {"type", "identifier", "';'"},
    # `int x` / `int(x)`: after int, double or char a name is the likelier
    "identifier": {"'('"},
}

_ASSIGN_OPS = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=",
               ">>="}


def _found(tok) -> str:
    text = tok.text if len(tok.text) <= 24 else tok.text[:20] + "..."
    if tok.kind == "keyword":
        return f"keyword '{text}'"
    return f"'{text}'"


def _syntax_error(failures: _Failures, tokens, text, where) -> CompileError:
    pos = failures.pos
    expected: list[str] = []
    semi_context = None
    for expr in failures.failed:
        name = getattr(expr, "name", "")
        if name in _SEMI_CONTEXT:
            desc = "';'"
            semi_context = _SEMI_CONTEXT[name]
        else:
            desc = _DESCRIPTIONS.get(name)
        if desc is not None and desc not in expected:
            expected.append(desc)
    for big, small in _SUBSUMES.items():
        if big in expected:
            expected = [d for d in expected if d == big or d not in small]

    starts = [t.start for t in tokens]
    k = bisect.bisect_left(starts, pos)
    tok = tokens[k] if k < len(tokens) else None
    prev_end = tokens[k - 1].end if k > 0 else None
    if k > 0 and tokens[k - 1].end > pos:
        # The grammar failed inside a lexer token: the second '>' of a `>>`
        # that closes nested types (`vector<int>> x`). What was found is
        # the rest of that token.
        inside = tokens[k - 1]
        tok = inside._replace(text=inside.text[pos - inside.start:],
                              start=pos)
        prev_end = pos
    at = tok.start if tok is not None else len(text)

    if tok is not None and tok.text == "else" and "statement" in expected:
        return CompileError(where(at), "'else' without a matching 'if'")
    if tok is None and "'}'" in expected:
        expected = ["'}'"]
    if not expected:
        expected = ["end of file"] if tok is not None else []

    hint = ""
    ends_expression = {"';'", "')'", "']'", "','"}
    if tok is not None and tok.text in _ASSIGN_OPS and (
            ends_expression.intersection(expected)):
        hint = " (assignment is a statement, not an expression)"
    hint = hint or _mistake_hint(tokens, k, expected)
    found = _found(tok) if tok is not None else "end of file"
    want = " or ".join(expected)

    if expected == ["';'"] and semi_context is not None:
        # Point just after the token the ';' should follow, like clang.
        prev = prev_end if prev_end is not None else at
        return CompileError(
            where(prev),
            f"expected ';' {semi_context}, found {found}{hint}")
    if expected == ["'('"] and tok is not None and tok.text in (";", "=") \
            and any(getattr(e, "name", "") == "PARAMS_LPAREN"
                    for e in failures.failed):
        return CompileError(
            where(at), f"expected '(' after the function name, found "
                       f"{found} (M/s has no global variables)")
    if tok is None:
        # Point just after the last token, so the caret is under real text.
        at = tokens[-1].end if tokens else at
        if not expected:
            return CompileError(where(at), "unexpected end of file")
        return CompileError(where(at), f"unexpected end of file, expected {want}")
    return CompileError(where(at), f"expected {want}, found {found}{hint}")


# C statements and words M/s lacks, with what to write instead.
_C_WORDS = {
    "switch": "M/s has no 'switch'; use if / else if",
    "case": "M/s has no 'switch'; use if / else if",
    "do": "M/s has no 'do ... while'; use while",
    "goto": "M/s has no 'goto'",
    "typedef": "M/s has no 'typedef'",
    "union": "M/s has no 'union'",
    "enum": "M/s has no 'enum'; use int constants",
    "unsigned": "M/s has no unsigned types",
    "long": "M/s's int is 64 bits; there is no 'long'",
    "float": "M/s has 'double', not 'float'",
    "const": "M/s has no 'const'",
    "static": "M/s has no 'static'",
}

# Two adjacent tokens that spell a C operator M/s lacks.
_C_PAIRS = {
    ("+", "+"): "M/s has no '++' operator; write 'i += 1'",
    ("-", "-"): "M/s has no '--' operator; write 'i -= 1'",
    ("&&", "="): "M/s has no '&&=' operator; write 'a = a && b'",
    ("||", "="): "M/s has no '||=' operator; write 'a = a || b'",
}


def _mistake_hint(tokens, k: int, expected: list) -> str:
    """A parenthesized hint for a syntax error at token k that is one of the
    usual mistakes of a C programmer, or ""."""
    def text(i):
        return tokens[i].text if 0 <= i < len(tokens) else None

    for i in (k - 2, k - 1, k):
        if 0 <= i < len(tokens) - 1 and tokens[i].end == tokens[i + 1].start:
            pair = (tokens[i].text, tokens[i + 1].text)
            if pair in _C_PAIRS:
                return f" ({_C_PAIRS[pair]})"
    # A C keyword in the statement so far (back to the last ; { or }).
    i = min(k, len(tokens) - 1)
    if i == k and tokens[i].text in (";", "{", "}"):
        i -= 1   # the statement before the token that did not fit
    while i >= 0 and tokens[i].text not in (";", "{", "}"):
        if tokens[i].kind == "name" and tokens[i].text in _C_WORDS:
            return f" ({_C_WORDS[tokens[i].text]})"
        i -= 1
    # `P p;` or `vector<P>` for a declared struct P.
    structs = {tokens[j + 1].text for j in range(len(tokens) - 1)
               if tokens[j].text == "struct" and tokens[j + 1].kind == "name"}
    if "type" in expected and text(k) in structs:
        return f" (a struct type is written 'struct {text(k)}')"
    if text(k - 1) in structs and k < len(tokens) and tokens[k].kind == "name" \
            and text(k - 2) != "struct":
        return f" (a struct type is written 'struct {text(k - 1)}')"
    return ""


# ---------------------------------------------------------------- the AST

def _tok(node) -> str:
    """The text of a token node (without the whitespace after it)."""
    return node.match.group("t")


def _opt(node):
    """The child of an `x?` node, or None."""
    return node.children[0] if node.children else None


def _list(node) -> list:
    """`(x (SEP x)*)?` -> the x nodes."""
    if not node.children:
        return []
    seq = node.children[0]
    first, rest = seq.children
    return [first] + [pair.children[1] for pair in rest.children]


class _Builder:
    """Builds surface nodes top-down from the parse tree, by rule name."""

    def __init__(self, where, values: dict):
        self.where = where
        self.values = values

    def pos(self, node) -> Pos:
        return self.where(node.start)

    # ------------------------------------------------------------ top level

    def program(self, node) -> S.Program:
        decls = tuple(self.top_decl(d.children[0])
                      for d in node.children[1].children)
        return S.Program(decls=decls, pos=self.where(0))

    def top_decl(self, node):
        kind = node.expr_name
        c = node.children
        if kind == "struct_decl":
            fields = tuple(
                S.FieldDecl(type=self.type(f.children[0]),
                            name=_tok(f.children[1]), pos=self.pos(f.children[1]))
                for f in c[3].children)
            return S.StructDecl(name=_tok(c[1]), fields=fields,
                                pos=self.pos(c[1]))
        if kind == "master_decl":
            return S.MasterDecl(body=self.block(c[1]), pos=self.pos(node))
        if kind == "job_decl":
            c = c[1:]
        ret, name, params, body = c
        return S.FuncDecl(name=_tok(name), params=self.params(params),
                          ret=self.type(ret), body=self.block(body),
                          is_job=kind == "job_decl", pos=self.pos(name))

    def params(self, node) -> tuple:
        return tuple(
            S.Param(type=self.type(p.children[0]), name=_tok(p.children[1]),
                    pos=self.pos(p.children[1]))
            for p in _list(node.children[1]))

    def type(self, node) -> T.Type:
        node = node.children[0]
        kind = node.expr_name
        if kind == "vector_type":
            return T.VectorType(self.type(node.children[2]))
        if kind == "map_type":
            return T.MapType(self.type(node.children[2]),
                             self.type(node.children[4]))
        if kind == "job_type":
            return T.JobType(self.type(node.children[2]))
        if kind == "struct_type":
            return T.StructType(_tok(node.children[1]))
        return _BASIC_TYPES[_tok(node)]

    # ------------------------------------------------------------ statements

    def block(self, node) -> S.Block:
        return S.Block(stmts=tuple(self.statement(s)
                                   for s in node.children[1].children),
                       pos=self.pos(node))

    def statement(self, node):
        node = node.children[0]
        kind = node.expr_name
        c = node.children
        p = self.pos(node)
        if kind == "block":
            return self.block(node)
        if kind == "if_stmt":
            else_part = _opt(c[5])
            return S.If(cond=self.expr(c[2]), then=self.statement(c[4]),
                        else_=(self.statement(else_part.children[1])
                               if else_part is not None else None),
                        pos=p)
        if kind == "while_stmt":
            return S.While(cond=self.expr(c[2]), body=self.statement(c[4]),
                           pos=p)
        if kind == "for_stmt":
            init, cond, step = _opt(c[2]), _opt(c[4]), _opt(c[6])
            return S.For(
                init=self.simple(init.children[0]) if init else None,
                cond=self.expr(cond) if cond else None,
                step=self.simple(step.children[0]) if step else None,
                body=self.statement(c[8]), pos=p)
        if kind == "return_stmt":
            value = _opt(c[1])
            return S.Return(value=self.expr(value) if value else None, pos=p)
        if kind == "break_stmt":
            return S.Break(pos=p)
        if kind == "continue_stmt":
            return S.Continue(pos=p)
        if kind == "empty_stmt":
            return S.Empty(pos=p)
        # assign_stmt, expr_stmt, decl_stmt: a simple statement and its ';'
        return self.simple(c[0])

    def simple(self, node):
        """An assignment, expression or declaration (no ';')."""
        kind = node.expr_name
        c = node.children
        if kind == "assignment":
            return S.Assign(target=self.expr(c[0]), op=_tok(c[1]),
                            value=self.expr(c[2]), pos=self.pos(c[1]))
        if kind == "declaration":
            init = _opt(c[2])
            return S.VarDecl(type=self.type(c[0]), name=_tok(c[1]),
                             init=(self.expr(init.children[1])
                                   if init is not None else None),
                             pos=self.pos(c[1]))
        assert kind == "expr", kind
        return S.ExprStmt(expr=self.expr(node), pos=self.pos(node))

    # ------------------------------------------------------------ expressions

    def expr(self, node) -> S.Expr:
        """`unary (BINARY_OP unary)*`, grouped by precedence (all
        left-associative) with an operator stack."""
        first, rest = node.children
        operands = [self.unary(first)]
        ops: list = []  # (op, pos)

        def reduce():
            op, p = ops.pop()
            right = operands.pop()
            left = operands.pop()
            if op == "::":
                operands.append(S.Append(target=left, value=right, pos=p))
            else:
                operands.append(S.Binary(op=op, left=left, right=right, pos=p))

        for pair in rest.children:
            op_node, operand = pair.children
            op = _tok(op_node)
            prec = PRECEDENCE[op]
            while ops and PRECEDENCE[ops[-1][0]] >= prec:
                reduce()
            ops.append((op, self.pos(op_node)))
            operands.append(self.unary(operand))
        while ops:
            reduce()
        return operands[0]

    def unary(self, node) -> S.Expr:
        prefixes, body = node.children
        body = body.children[0]
        if body.expr_name == "remote":
            c = body.children
            e = S.Remote(name=_tok(c[1]), args=self.arg_list(c[3]),
                         pos=self.pos(body))
        else:
            e = self.postfix(body)
        for op_node in reversed(prefixes.children):
            e = S.Unary(op=_tok(op_node), operand=e, pos=self.pos(op_node))
        return e

    def postfix(self, node) -> S.Expr:
        primary, ops = node.children
        e = self.primary(primary.children[0])
        for op in ops.children:
            op = op.children[0]
            if op.expr_name == "index":
                e = S.Index(base=e, index=self.expr(op.children[1]),
                            pos=self.pos(op))
            else:
                e = S.FieldAccess(base=e, name=_tok(op.children[1]),
                                  pos=self.pos(op))
        return e

    def primary(self, node) -> S.Expr:
        kind = node.expr_name
        p = self.pos(node)
        if kind == "paren":
            return self.expr(node.children[1])
        if kind == "call":
            return S.Call(name=_tok(node.children[0]),
                          args=self.args(node.children[1]), pos=p)
        if kind == "conversion":
            return S.Call(name=_tok(node.children[0]),
                          args=self.arg_list(node.children[2]), pos=p)
        if kind == "INT":
            return S.IntLit(value=self.values[node.start], pos=p)
        if kind == "DOUBLE":
            return S.DoubleLit(value=self.values[node.start], pos=p)
        if kind == "CHAR":
            return S.CharLit(value=self.values[node.start], pos=p)
        if kind == "STRING":
            return S.StringLit(value=self.values[node.start], pos=p)
        if kind == "BOOL":
            return S.BoolLit(value=_tok(node) == "true", pos=p)
        if kind == "JOBSTATE":
            return S.JobStateLit(value=_tok(node), pos=p)
        assert kind == "NAME", kind
        return S.Name(name=_tok(node), pos=p)

    def args(self, node) -> tuple:
        return self.arg_list(node.children[1])

    def arg_list(self, node) -> tuple:
        return tuple(self.expr(a) for a in _list(node))
