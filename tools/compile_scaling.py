"""Print how compile time grows with the length of a function.

    .venv/bin/python -m tools.compile_scaling [N ...] [-O LEVEL]

For each N (default 1000 2000 4000 8000) compiles a master block of N
statements `v :: 1;` and prints the time of the Python passes, of LLVM's
optimizer and of LLVM's code generator (docs/architecture.md, "Compile
time"). Each column should double when N doubles.
"""
from __future__ import annotations

import argparse
import time

from compiler.codegen import backend
from compiler.pipeline import Source, run_pipeline


def program(n: int) -> str:
    return "master {\n  vector<int> v;\n" + "  v :: 1;\n" * n + "  print(len(v));\n}\n"


def measure(n: int, opt: int) -> tuple[float, float, float]:
    start = time.perf_counter()
    module, _ = run_pipeline(Source("scaling.ms", program(n)))
    passes = time.perf_counter()
    ref, tm = backend.optimize(module, opt)
    optimized = time.perf_counter()
    tm.emit_object(ref)
    done = time.perf_counter()
    return passes - start, optimized - passes, done - optimized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 2000, 4000, 8000])
    ap.add_argument("-O", dest="opt", type=int, default=2, choices=range(4))
    args = ap.parse_args()
    print(f"{'statements':>10} {'passes s':>9} {'optimize s':>10} {'codegen s':>9}")
    for n in args.sizes:
        p, o, c = measure(n, args.opt)
        print(f"{n:>10} {p:>9.2f} {o:>10.2f} {c:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
