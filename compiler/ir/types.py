"""M/s types, shared by every IR.

Types carry no source positions, so two spellings of one type compare equal.
`string` exists only in the surface IR: desugar-strings replaces it with
`VectorType(CHAR)`, which is the same type (SPEC section 3).
"""
from __future__ import annotations

import attrs


@attrs.frozen
class Type:
    """Base class of all types."""


@attrs.frozen
class IntType(Type):
    def __str__(self) -> str:
        return "int"


@attrs.frozen
class DoubleType(Type):
    def __str__(self) -> str:
        return "double"


@attrs.frozen
class BoolType(Type):
    def __str__(self) -> str:
        return "bool"


@attrs.frozen
class CharType(Type):
    def __str__(self) -> str:
        return "char"


@attrs.frozen
class VoidType(Type):
    def __str__(self) -> str:
        return "void"


@attrs.frozen
class JobStateType(Type):
    def __str__(self) -> str:
        return "jobstate"


@attrs.frozen
class StringType(Type):
    """Surface spelling of vector<char>; gone after desugar-strings."""

    def __str__(self) -> str:
        return "string"


@attrs.frozen
class VectorType(Type):
    elem: Type

    def __str__(self) -> str:
        if self.elem == CHAR:
            return "string"
        return f"vector<{self.elem}>"


@attrs.frozen
class MapType(Type):
    """map<K, V> (SPEC 13): K is int, char, bool or string; V any type
    but void."""
    key: Type
    value: Type

    def __str__(self) -> str:
        return f"map<{self.key}, {self.value}>"


@attrs.frozen
class StructType(Type):
    """A reference to a struct declaration by name (struct names are unique)."""
    name: str

    def __str__(self) -> str:
        return f"struct {self.name}"


@attrs.frozen
class JobType(Type):
    result: Type

    def __str__(self) -> str:
        return f"job<{self.result}>"


INT = IntType()
DOUBLE = DoubleType()
BOOL = BoolType()
CHAR = CharType()
VOID = VoidType()
JOBSTATE = JobStateType()
STRING = VectorType(CHAR)

SCALARS = (INT, DOUBLE, BOOL, CHAR)

# The key types of maps (SPEC 13).
MAP_KEYS = (INT, CHAR, BOOL, STRING)

# Job states in the order the runtime numbers them (ms_job_state's result).
JOB_STATES = ("running", "finished", "failed", "cancelled")
