"""Randomly mutated programs must give a compile error or compile: never an
internal error or a traceback (the compiler's robustness contract)."""
import os
import sys

from harness import REPO

sys.path.insert(0, str(REPO))
from tools.fuzz import fuzz  # noqa: E402

COUNT = int(os.environ.get("MS_FUZZ_COUNT", "2000"))


def test_mutants_never_crash_the_compiler():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    failures = list(fuzz(COUNT, seed=20261125))
    report = "\n".join(f"{type(e).__name__}: {e}\n{m}\n" for m, e in failures[:3])
    assert not failures, f"{len(failures)} of {COUNT} mutants crashed:\n{report}"
