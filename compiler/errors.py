"""The one diagnostic type of the compiler, and source positions."""
import attrs


@attrs.frozen
class Pos:
    """A 1-based line and column in a source file."""
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class CompileError(Exception):
    """A user-facing compile error at a source position.

    Raised by any pass; only the driver renders it (FILE:LINE:COL: error: MSG,
    the source line and a caret).
    """

    def __init__(self, pos: Pos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message


def wrong_arity(pos: Pos, name: str, want: int, given: int,
                fewest: int | None = None) -> CompileError:
    """The error of a call of `name` (a function, job or builtin) that takes
    `want` arguments (or `fewest` to `want`) with `given`."""
    if fewest is not None and fewest != want:
        takes = f"{fewest} or {want} arguments" if want == fewest + 1 else \
            f"{fewest} to {want} arguments"
    else:
        takes = f"{want} argument" if want == 1 else f"{want} arguments"
    return CompileError(pos, f"'{name}' takes {takes}, but {given} "
                             f"{'was' if given == 1 else 'were'} given")
