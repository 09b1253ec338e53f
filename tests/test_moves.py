"""Moves at last uses (insert-refcounts, compiler/ir/liveness.py) keep the
append helpers linear: `v = push(v, i)` hands v to push, which appends in
place, instead of copying all of v on every call.

Checked without timing, in two ways:
- the reference interpreter of the refcounted IR (tests/vectors_interp.py)
  counts the elements copied because a write found its vector or map
  shared: none for the helpers below, whatever n; and n(n-1)/2 when the
  caller keeps the old value (so the count does see copies);
- the compiled master under valgrind: the heap bytes a run of n calls
  allocates beyond a run of none grow linearly (16000 calls against 2000:
  a ratio near 8; copying would make it near 64).
The golden programs of tests/golden/moves/ pin what moves and what must not.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import time

import pytest

from compiler.pipeline import Source, run_pipeline
from harness import build_program, write_program
from vectors_interp import Interpreter

HELPERS = """\
vector<int> push(vector<int> v, int x) { v :: x; return v; }
string addc(string s, char c) { s :: c; return s; }
struct Bag { vector<int> xs; int n; };
struct Bag add(struct Bag b, int x) { b->xs :: x; b->n += 1; return b; }
map<int, int> put(map<int, int> m, int k) { m[k] = k; return m; }
"""

# kind -> (declaration, the call in the loop, its size after the loop)
KINDS = {
    "vector": ("vector<int> v;", "v = push(v, i);", "len(v)"),
    "string": ("string s;", "s = addc(s, 'a');", "len(s)"),
    "struct": ("struct Bag b;", "b = add(b, i);", "len(b->xs) + b->n"),
    "map": ("map<int, int> m;", "m = put(m, i);", "len(m)"),
}


def program(kind: str, n: str, keep: bool = False) -> str:
    """The helper of `kind` called n times in a loop; with `keep`, the
    caller also keeps each old value in `old` (read after the loop)."""
    decl, call, size = KINDS[kind]
    var = decl.split()[-1].rstrip(";")
    kept, body, after = "", call, ""
    if keep:
        kept = f"  {decl[:-len(var) - 1]}old;\n"
        body = f"old = {var}; {call}"
        after = f"  print({size.replace(var, 'old')});\n"
    return (HELPERS + "master {\n"
            f"  int n = {n};\n  {decl}\n{kept}"
            f"  for (int i = 0; i < n; i += 1) {{ {body} }}\n"
            f"  print({size});\n{after}}}\n")


def copies(text: str) -> tuple[int, str]:
    prog, _ = run_pipeline(Source("t.ms", text), stop_after="insert-refcounts")
    interp = Interpreter(prog, text)
    interp.run()
    assert interp.leaks() == 0
    return interp.cow_copies, "".join(interp.out)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_append_helper_copies_nothing(kind):
    for n in (50, 400):
        copied, out = copies(program(kind, str(n)))
        assert copied == 0, f"{kind}: {copied} elements copied for n={n}"
        assert out.split()[0] == str(2 * n if kind == "struct" else n)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_caller_keeping_the_old_value_copies_it(kind):
    n = 50
    copied, _ = copies(program(kind, str(n), keep=True))
    assert copied == n * (n - 1) // 2


VALGRIND = shutil.which("valgrind")


def _heap_bytes(exe, n: int) -> int:
    run = subprocess.run([VALGRIND, f"{exe}-master", "--spawn", "0"],
                         input=str(n), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    m = re.search(r"total heap usage: .* ([\d,]+) bytes allocated", run.stderr)
    assert m, run.stderr
    return int(m.group(1).replace(",", ""))


@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
def test_compiled_append_helpers_allocate_linearly(tmp_path, runtime_built):
    body = "\n".join(f"  {KINDS[k][0]}" for k in sorted(KINDS))
    calls = " ".join(KINDS[k][1] for k in sorted(KINDS))
    text = (HELPERS + "master {\n  int n = int(read_stdin());\n" + body +
            f"\n  for (int i = 0; i < n; i += 1) {{ {calls} }}\n"
            "  print(len(v) + len(s) + len(b->xs) + len(m));\n}\n")
    exe = build_program(write_program(tmp_path, "helpers", text),
                        tmp_path / "helpers")
    base = _heap_bytes(exe, 0)
    small = _heap_bytes(exe, 2000) - base
    large = _heap_bytes(exe, 16000) - base
    assert 0 < small and large / small < 16, (base, small, large)


def _peak_rss_kib(exe, tmp_path, n: int) -> int:
    """The peak resident set (VmHWM) of a run of EXE-master (no slaves)
    given n on its standard input, in KiB, read from /proc while it runs
    (the programs below spend their last moments past their peak). Not
    getrusage: a child's maxrss starts at its parent's, pytest's here."""
    stdin = tmp_path / "n.txt"
    stdin.write_text(f"{n}\n")
    with open(stdin, "rb") as inp:
        proc = subprocess.Popen([f"{exe}-master", "--spawn", "0"], stdin=inp,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    peak, deadline = 0, time.monotonic() + 60
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"{exe}-master ran over 60 s"
            try:
                status = pathlib.Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                break       # it has just exited
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            time.sleep(0.005)
        assert proc.wait(timeout=10) == 0, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return peak


def test_a_vector_read_for_the_last_time_is_freed_before_the_next_is_built(
        tmp_path, runtime_built):
    """Drops at last use (insert-refcounts, liveness.dead_after): `a` is
    freed after the loop that sums it, so building `b` reuses its memory
    and the peak holds one vector of n ints. The control reads `a` again at
    the end, so both are alive at once: its peak is a vector's size higher
    (8 million ints, 64 MB; the margin asked for is 40 MB)."""
    def program(keep: bool) -> str:
        tail = "  print(a[0]);\n" if keep else ""
        return ("master {\n  int n = int(read_stdin());\n"
                "  vector<int> a;\n  for (int i = 0; i < n; i += 1) a :: i;\n"
                "  int s = 0;\n  for (int i = 0; i < n; i += 1) s += a[i];\n"
                "  vector<int> b;\n  for (int i = 0; i < n; i += 1) b :: 2 * i;\n"
                "  for (int r = 0; r < 40; r += 1)\n"
                "    for (int i = 0; i < n; i += 1) s += b[i] % 7;\n"
                "  print(s);\n" + tail + "}\n")
    dropped = build_program(write_program(tmp_path, "dropped", program(False)),
                            tmp_path / "dropped")
    kept = build_program(write_program(tmp_path, "kept", program(True)),
                         tmp_path / "kept")
    n = 8_000_000
    peak_dropped = _peak_rss_kib(dropped, tmp_path, n)
    peak_kept = _peak_rss_kib(kept, tmp_path, n)
    assert peak_dropped > 64 * 1024, peak_dropped    # it was read at all
    assert peak_kept - peak_dropped > 40 * 1024, (peak_dropped, peak_kept)
