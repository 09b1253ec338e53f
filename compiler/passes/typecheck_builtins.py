"""The builtins of SPEC section 6: their names and their typing rules.

Used by typecheck only. `result_type(name, call, arg_types)` returns the type
of a builtin call whose arguments have the given (already checked, non-void)
types, or raises CompileError at the offending argument.
"""
from __future__ import annotations

from compiler.errors import CompileError
from compiler.ir import types as T

# Every builtin with its number of arguments.
ARITY = {
    "print": 1, "len": 1, "str": 1, "get": 1, "state": 1, "cancel": 1,
    "sqrt": 1, "exp": 1, "log": 1, "sin": 1, "cos": 1, "tan": 1,
    "floor": 1, "ceil": 1, "atan2": 2, "pow": 2,
    "abs": 1, "min": 2, "max": 2,
    "int": 1, "double": 1, "char": 1,
}

BUILTINS = frozenset(ARITY)

_PRINTABLE = (T.INT, T.DOUBLE, T.BOOL, T.CHAR, T.STRING, T.JOBSTATE)
_STRINGABLE = (T.INT, T.DOUBLE, T.BOOL, T.CHAR, T.JOBSTATE)
_MATH = frozenset(("sqrt", "exp", "log", "sin", "cos", "tan", "floor",
                   "ceil", "atan2", "pow"))

# One-argument builtins taking one of a fixed set of types:
# name -> (accepted types, how to say them, result type or None for "same").
_SIMPLE = {
    "print": (_PRINTABLE, "an int, double, bool, char, string or jobstate", T.VOID),
    "str": (_STRINGABLE, "an int, double, bool, char or jobstate", T.STRING),
    "int": ((T.DOUBLE, T.CHAR, T.BOOL, T.INT), "a double, char, bool or int", T.INT),
    "double": ((T.INT, T.DOUBLE), "an int or double", T.DOUBLE),
    "char": ((T.INT, T.CHAR), "an int or char", T.CHAR),
    "abs": ((T.INT, T.DOUBLE), "an int or double", None),
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_arity(name: str, pos, given: int) -> None:
    want = ARITY[name]
    if given != want:
        raise CompileError(pos, f"'{name}' takes {_plural(want, 'argument')}, "
                                f"but {given} {'was' if given == 1 else 'were'} given")


def result_type(name: str, args: tuple, arg_types: list) -> T.Type:
    """The type of builtin call `name(args)`; arity is already checked."""
    if name in _SIMPLE:
        accepted, spelled, result = _SIMPLE[name]
        t = arg_types[0]
        if t not in accepted:
            raise CompileError(args[0].pos, f"'{name}' takes {spelled}, not {t}")
        return t if result is None else result
    if name == "len":
        t = arg_types[0]
        if not isinstance(t, T.VectorType):
            raise CompileError(args[0].pos, f"'len' takes a vector or string, not {t}")
        return T.INT
    if name in ("get", "state", "cancel"):
        t = arg_types[0]
        if not isinstance(t, T.JobType):
            raise CompileError(args[0].pos, f"'{name}' takes a job handle, not {t}")
        return {"get": t.result, "state": T.JOBSTATE, "cancel": T.VOID}[name]
    if name in _MATH:
        for i, (arg, t) in enumerate(zip(args, arg_types)):
            if t != T.DOUBLE:
                if len(args) == 1:
                    raise CompileError(arg.pos, f"'{name}' takes a double, not {t}")
                raise CompileError(arg.pos, f"argument {i + 1} of '{name}' "
                                            f"must be a double, not {t}")
        return T.DOUBLE
    if name in ("min", "max"):
        a, b = arg_types
        if a == b and a in (T.INT, T.DOUBLE):
            return a
        bad = args[0] if a not in (T.INT, T.DOUBLE) else args[1]
        raise CompileError(bad.pos, f"'{name}' takes two ints or two doubles, "
                                    f"not {a} and {b}")
    raise AssertionError(f"unknown builtin {name}")
