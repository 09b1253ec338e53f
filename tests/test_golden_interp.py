"""Both reference interpreters against the golden programs of the areas
whose builtins they implement beyond v1 (SPEC 12.3's text and vector
builtins, SPEC 13's maps), and of the moves at last uses
(tests/golden/moves/, insert-refcounts): tools/msi.py prints each
program's expected output, and tests/vectors_interp.py runs its refcounted
IR to the same output, leaking nothing and using nothing freed
(tests/golden_interp.py)."""
from __future__ import annotations

import pytest

import golden_interp
from harness import REPO

AREAS = ("text", "maps", "moves")
PROGRAMS = [p for area in AREAS
            for p in sorted((REPO / "tests" / "golden" / area).glob("*.ms"))
            if not p.stem.startswith("fail-")]


def _id(path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", PROGRAMS, ids=_id)
def test_msi_agrees_with_golden(path):
    golden_interp.check_msi(path)


@pytest.mark.parametrize("path", PROGRAMS, ids=_id)
def test_refcounted_ir_agrees_with_golden_and_leaks_nothing(path):
    golden_interp.check_refcounted(path)
