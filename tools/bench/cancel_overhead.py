"""What cancellation checks cost job code: each kernel runs as a job, built
twice from one source, with the cancel-checks lower-remote places and with
them stripped from its output, and timed on one local slave.

    python -m tools.bench.cancel_overhead [--repeat 3] [--only NAME ...]

The kernels are the value kernels of tools/bench/ms (sieve, matmul, fib)
moved into a job, plus `lcg`, a tight scalar loop (one multiply-add per
iteration, a check per iteration: the worst case). Every time is the best of
--repeat runs (the variants interleaved) of the CPU time (user + system)
of the master and its slave, less the same at N = 0. Prints each kernel's two times and the
overhead of the checks in percent.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import attrs

from compiler.codegen import backend
from compiler.ir import lowered as L
from compiler.ir.surface import Block
from compiler.ir.walk import map_children
from compiler.passes import codegen
from compiler.pipeline import Source, run_pipeline

KERNELS = {
    "sieve": (10_000_000, """
job int sieve(int n) {
    int count = 0;
    for (int rep = 0; rep < 5; rep += 1) {
        vector<bool> composite;
        for (int i = 0; i <= n; i += 1) composite :: false;
        count = 0;
        for (int i = 2; i <= n; i += 1) {
            if (!composite[i]) {
                count += 1;
                for (int j = i * i; j <= n; j += i) composite[j] = true;
            }
        }
    }
    return count;
}
master { print(get(remote sieve(@N@))); }
"""),
    "matmul": (800, """
job double matmul(int n) {
    vector<double> a;
    vector<double> b;
    vector<double> c;
    for (int i = 0; i < n * n; i += 1) {
        a :: double(i % 7) * 0.5;
        b :: double(i % 5) * 0.25;
        c :: 0.0;
    }
    for (int i = 0; i < n; i += 1)
        for (int k = 0; k < n; k += 1) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j += 1)
                c[i * n + j] += aik * b[k * n + j];
        }
    double trace = 0.0;
    for (int i = 0; i < n; i += 1) trace += c[i * n + i];
    return trace;
}
master { print(get(remote matmul(@N@))); }
"""),
    "fib": (37, """
int fib(int n) { if (n < 2) return n; return fib(n - 1) + fib(n - 2); }
job int run(int n) { return fib(n); }
master { print(get(remote run(@N@))); }
"""),
    "lcg": (1_000_000_000, """
job int lcg(int n) {
    int x = 1;
    for (int i = 0; i < n; i += 1) x = x * 6364136223846793005 + 1442695040888963407;
    return x;
}
master { print(get(remote lcg(@N@))); }
"""),
}


def strip_checks(prog):
    """The lowered program without its CancelChecks."""
    def strip(n):
        n = map_children(n, strip)
        if isinstance(n, Block) and any(isinstance(s, L.CancelCheck)
                                        for s in n.stmts):
            return attrs.evolve(n, stmts=tuple(
                s for s in n.stmts if not isinstance(s, L.CancelCheck)))
        return n
    return strip(prog)


def build(text: str, name: str, checks: bool) -> None:
    prog, _ = run_pipeline(Source(name + ".ms", text),
                           stop_after="lower-remote")
    if not checks:
        prog = strip_checks(prog)
    backend.build_executables(codegen.run(prog), 2, name)


def cpu_time(exe: str) -> tuple[float, str]:
    """User + system CPU seconds of one run of the master and its local
    slave (which it waits for), and the master's stdout. CPU time suffers
    less than wall time from other work on a shared machine."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen([exe, "--spawn", "1"], stdout=out,
                             stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"{exe} failed with status {p.returncode}")
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, out.read().decode()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=sorted(KERNELS))
    args = ap.parse_args(argv)
    names = args.only or list(KERNELS)
    with tempfile.TemporaryDirectory(prefix="ms-cancel-bench.") as tmp:
        print(f"{'kernel':8} {'no checks':>10} {'checks':>10} {'overhead':>9}")
        for kname in names:
            n, text = KERNELS[kname]
            exes = {}
            for checks in (False, True):
                for size in (0, n):
                    stem = f"{tmp}/{kname}-{int(checks)}-{size}"
                    build(text.replace("@N@", str(size)), stem, checks)
                    exes[checks, size] = stem + "-master"
            best = {key: float("inf") for key in exes}
            outs = {}
            for _ in range(args.repeat):     # interleaved: drift hits both
                for key, exe in exes.items():
                    took, outs[key] = cpu_time(exe)
                    best[key] = min(best[key], took)
            if outs[False, n] != outs[True, n]:
                raise SystemExit(f"{kname}: outputs differ: "
                                 f"{outs[False, n]!r} {outs[True, n]!r}")
            off = max(best[False, n] - best[False, 0], 1e-9)
            on = max(best[True, n] - best[True, 0], 1e-9)
            print(f"{kname:8} {off:9.3f}s {on:9.3f}s "
                  f"{100 * (on / off - 1):+8.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
