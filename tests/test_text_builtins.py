"""SPEC 12.3's builtins (int(s), double(s), split, join, find, slice, sort,
repeat) beyond the golden programs of tests/golden/text/ (which
tests/test_golden_interp.py also runs through both interpreters): the
compiled builtins are linear (n log n for sort) on inputs where a quadratic
algorithm would not finish."""
from __future__ import annotations

import math
import time

import pytest

from compiler.errors import Pos
from harness import REPO, build_program, run_master, write_program
from tools import msi





POS = Pos("t.ms", 1, 1)


@pytest.mark.parametrize("text,value", [
    (b"1.", 1.0), (b".5", 0.5), (b"-.5e1", -5.0), (b"1e-400", 0.0),
    (b"\n+inf\t", math.inf), (b"5e-324", 5e-324)])
def test_msi_double_forms(text, value):
    assert msi.text_to_double(text, POS) == value


@pytest.mark.parametrize("text", [b"1e", b".", b"0x1", b"infinity", b"1 e5",
                                  b"\x0b1", b"1d", b"nan1"])
def test_msi_double_rejects(text):
    with pytest.raises(msi.MsError):
        msi.text_to_double(text, POS)


LINEAR = """
// Sizes from the command line would need args(); these are fixed.
master {
    string piece = "abcdefgh,";
    vector<string> pieces = repeat(piece, 1000000);
    string text = join(pieces, "");                    // 9 MB, 1,000,000 commas
    vector<string> parts = split(text, ",");
    print(len(parts));
    print(len(join(parts, ";")));
    // Patterns that make naive searches quadratic.
    string hay = join(repeat("a", 4000000), "") + "b";
    string needle = join(repeat("a", 200000), "") + "b";
    print(find(hay, needle));
    vector<int> ints = repeat(0, 2000000);
    ints :: 1;
    vector<int> run = repeat(0, 100000);
    run :: 1;
    print(find(ints, run));
    print(len(split(hay, needle)));
    vector<int> big;
    for (int i = 0; i < 1000000; i += 1) { big :: (i * 7919) % 1000003; }
    vector<int> s = sort(big);
    print(s[0] <= s[1] && s[999998] <= s[999999]);
}
"""


def test_big_inputs_take_linear_time(tmp_path, runtime_built):
    ms = write_program(tmp_path, "linear", LINEAR)
    prefix = build_program(ms, tmp_path / "linear")
    start = time.monotonic()
    run = run_master(prefix, timeout=60, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1000001", "9000000", "3800000",
                                  "1900000", "2", "true"]
    # Quadratic searches would take minutes; linear ones well under a second
    # each, even on a loaded machine.
    assert elapsed < 30, elapsed
