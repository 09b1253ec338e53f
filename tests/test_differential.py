"""Differential testing: random programs (tools/progen) run by the reference
interpreter (tools/msi) and compiled with msc, must agree.

For each seed, the generated program is run by msi for the expected master
stdout, exit status and runtime error line; then it is compiled with
`python -m compiler` and its master run on local slaves (bounded in time,
its process group killed afterwards). Stdout must match byte for byte, the
exit status must match, and the runtime error lines of the master's stderr
must be the one msi predicts. What the master eprints must be in its stderr
too, each line whole and in order: that stderr also holds what local slaves
print, but each eprint line is one write, so it is never cut.

    MS_DIFF_COUNT=200 pytest tests/test_differential.py    more seeds
    MS_DIFF_SEED=1000                                      first seed
    MS_DIFF_AVOID=nested-read-order                        skip a known bug
    python -m tests.test_differential 0 500               outside pytest
    python -m tools.progen --seed N                        one program

Minimized reproducers of the bugs found live in tests/golden/differential/.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

REPO = pathlib.Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):     # also outside pytest (python -m)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import Orphans, msc, run_bounded  # noqa: E402
from tools import msi, progen  # noqa: E402

COUNT = int(os.environ.get("MS_DIFF_COUNT", "40"))
FIRST = int(os.environ.get("MS_DIFF_SEED", "0"))
# Comma-separated names of progen.KNOWN_BUGS to steer away from.
AVOID = frozenset(filter(None, os.environ.get("MS_DIFF_AVOID", "").split(",")))
RUN_TIMEOUT = 30
RUNTIME_ERROR = re.compile(rb": runtime error: ")


def _error_lines(err: bytes) -> bytes:
    """The lines of `err` that report a runtime error, each with its newline."""
    return b"".join(line + b"\n" for line in err.split(b"\n")
                    if RUNTIME_ERROR.search(line))


def run_bytes(cmd, *, cwd, timeout):
    """Run `cmd` bounded in time with bytes output (a program may print any
    byte); the group is killed afterwards. Returns (status, stdout,
    stderr); status None on a timeout."""
    try:
        r = run_bounded(cmd, cwd=cwd, timeout=timeout, text=False)
    except subprocess.TimeoutExpired:
        return None, b"", b""
    except Orphans as e:
        r = e.result
        r.stderr += b"\n(differential: the master left processes behind)\n"
    return r.returncode, r.stdout, r.stderr


def first_difference(expected: bytes, actual: bytes) -> str:
    exp, act = expected.split(b"\n"), actual.split(b"\n")
    for k, (a, b) in enumerate(zip(exp, act)):
        if a != b:
            return f"line {k + 1}: expected {a!r}, got {b!r}"
    if len(exp) != len(act):
        k = min(len(exp), len(act))
        more = "expected more lines" if len(exp) > len(act) else "extra lines"
        nxt = (exp if len(exp) > len(act) else act)[k]
        return f"line {k + 1}: {more}, first {nxt!r}"
    return "no difference"


def missing_in_order(lines: bytes, stream: bytes) -> bytes | None:
    """The first of `lines` not found whole in `stream` after the previous
    one, or None when all are."""
    at = 0
    for line in lines.splitlines(keepends=True):
        k = stream.find(line, at)
        if k < 0:
            return line
        at = k + len(line)
    return None


def check_seed(seed: int, workdir: pathlib.Path) -> str | None:
    """Run one seed both ways; None when they agree, else a description."""
    name = f"p{seed}"
    text = progen.generate(seed, avoid=AVOID)
    source = workdir / f"{name}.ms"
    source.write_text(text)
    expected = msi.run_source(f"{name}.ms", text)
    built = msc(f"{name}.ms", "-o", name, cwd=workdir, timeout=300)
    if built.returncode != 0:
        return f"seed {seed}: msc failed:\n{built.stderr}"
    status, out, err = run_bytes([str(workdir / f"{name}-master")], cwd=workdir,
                                 timeout=RUN_TIMEOUT)
    if status is None:
        return f"seed {seed}: the master did not finish within {RUN_TIMEOUT}s"
    problems = []
    if out != expected.stdout:
        problems.append("stdout differs at " + first_difference(expected.stdout, out))
    err_lines = _error_lines(err)
    # A master-side fail(msg) whose msg holds a newline writes it as it is:
    # msi's expectation goes through the same filter, line by line.
    if err_lines != _error_lines(expected.stderr.encode()):
        problems.append(f"runtime error: expected {expected.stderr.strip()!r}, "
                        f"got {err_lines.decode(errors='replace').strip()!r}")
    lost = missing_in_order(expected.eprinted, err)
    if lost is not None:
        problems.append(f"eprint: {lost!r} is not in stderr where expected")
    if status != expected.status:
        tail = err.decode(errors="replace")[-400:]
        problems.append(f"exit status: expected {expected.status}, got {status}"
                        f"; stderr ends:\n{tail}")
    if problems:
        flags = "".join(f" --avoid {a}" for a in sorted(AVOID))
        return (f"seed {seed} (python -m tools.progen --seed {seed}{flags}):\n  "
                + "\n  ".join(problems))
    return None


def check_seeds(seeds, jobs: int = 2):
    """Check each seed in its own directory; yields (seed, problem)."""
    with tempfile.TemporaryDirectory(prefix="ms-diff-") as tmp:
        def one(seed):
            d = pathlib.Path(tmp) / str(seed)
            d.mkdir()
            try:
                return seed, check_seed(seed, d)
            except Exception as e:  # noqa: BLE001 - reported with the seed
                return seed, f"seed {seed}: {type(e).__name__}: {e}"
        with ThreadPoolExecutor(jobs) as pool:
            yield from pool.map(one, seeds)


def test_random_programs_agree_with_the_reference_interpreter(runtime_built):
    failures = [p for _, p in check_seeds(range(FIRST, FIRST + COUNT)) if p]
    assert not failures, f"{len(failures)} of {COUNT} seeds disagree:\n" + \
        "\n".join(failures[:5])


def test_interpreter_reproduces_spec_examples():
    """msi itself on SPEC's fixed points (formats, wrapping, errors)."""
    text = """
job int divide(int a, int b) { return a / b; }
master {
  print(0.1 + 0.2); print(1e21); print(-0.0); print(1234567.0);
  print(-9223372036854775807 - 1 - 1);
  print((-9223372036854775807 - 1) / -1); print((-9223372036854775807 - 1) % -1);
  print(-7 / 2); print(-7 % 2); print(int(-2.7)); print(int(1e300)); print(int(0.0/0.0));
  print(char(321)); print("ab" < "b"); print(abs(-9223372036854775807 - 1));
  vector<int> v; v :: 1 :: 2; vector<int> w = v :: 3; w[0] = 9; print(v[0]); print(len(v));
  job<int> j = remote divide(1, 0);
  print(get(j));
}
"""
    o = msi.run_source("t.ms", text)
    assert o.stdout.decode().split("\n") == [
        "0.30000000000000004", "1e+21", "-0", "1234567",
        "9223372036854775807", "-9223372036854775808", "0", "-3", "-1", "-2",
        "9223372036854775807", "0", "A", "true", "-9223372036854775808",
        "1", "3", ""]
    assert o.status == 1
    assert o.stderr == ("t.ms:11:9: runtime error: job 'divide' failed: "
                        "t.ms:2:41: division by zero\n")


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="differential runs over seeds")
    p.add_argument("first", type=int)
    p.add_argument("last", type=int)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    bad = 0
    for seed, problem in check_seeds(range(args.first, args.last), args.jobs):
        if problem:
            bad += 1
            print(problem, flush=True)
    print(f"{bad} of {args.last - args.first} seeds disagree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
