"""The reference interpreters against a golden program's expectations:
tools/msi.py on the typed IR, tests/vectors_interp.py on the refcounted IR
(which must also leak nothing). Shared by the tests of areas whose golden
programs both interpreters run (text, maps)."""
from __future__ import annotations

import pathlib

import vectors_interp
from compiler.pipeline import Source, run_pipeline
from tools import msi


def expected(path: pathlib.Path) -> tuple[str, str]:
    """The golden .out and .err ("" without one) of program `path`."""
    err = path.with_suffix(".err")
    return path.with_suffix(".out").read_text(), \
        (err.read_text() if err.exists() else "")


def check_msi(path: pathlib.Path) -> None:
    out, err = expected(path)
    outcome = msi.run_source(path.name, path.read_text())
    assert outcome.stdout.decode() == out
    assert outcome.stderr == err
    assert outcome.status == (1 if err else 0)


def check_refcounted(path: pathlib.Path) -> None:
    out, err = expected(path)
    prog, _ = run_pipeline(Source(path.name, path.read_text()),
                           stop_after="insert-refcounts")
    got_out, got_err, leaks = vectors_interp.run_program(prog, path.name)
    assert got_out == out
    assert (got_err or "") == err
    assert leaks == 0
