"""The M/s benchmarks: each figure beside a baseline measured in the same run.

    python -m tools.bench.run [--only NAME ...] [--repeat 3] [--window-jobs N]

Map kernels (map_ints, map_ints_random, map_words: SPEC 13) run as an M/s
master block and
against three baselines, a small open-addressing table written in C, C++'s
std::unordered_map and Python's dict, with the M/s time over each;
map_ints also against the C table with a keyed hash like the M/s map's
(c/map_ints_keyed.c), safe from crafted keys as the others are not.
map_ints_random takes its keys from a 64-bit LCG: map_ints' i * 2654435761
is an arithmetic progression, which the unkeyed multiplicative and identity
hashes of the C table and std::unordered_map spread without a collision,
as no keyed hash can.
map_crafted is map_ints with crafted keys over random keys, both in M/s:
multiples of 2^32, which collide in an unkeyed hash's low bits, and
multiples of 16777213, the prime size of the index of 10 million keys,
which share one home slot while the map places int keys by value.

Value kernels (sieve, matmul, strings, structs, fib; text_split, text_join
and text_find for SPEC 12.3's builtins on 100 MB of text) run the same algorithm
as an M/s master block and as C compiled with gcc -O2; the table shows the
M/s time over the C time. The job benchmarks (tiny-job throughput, round
trip latency, a 10-million-element argument) run against 2 local slaves and
are compared with a raw loopback TCP floor (tcp_floor.c, the same 12-byte
header and nothing else: one reply per write for the round trip, replies
batched per read for throughput), and with Ray and Dask when those import.
Tiny jobs run as fan-outs of 20,000 and 200,000 jobs; the slope between the
two is the steady rate. The
wait_any benchmark keeps 1,000 of a million tiny jobs in flight (drain one
with wait_any, start one) and prints its time over the plain fan-out's
(tiny_jobs.ms) of as many jobs (--window-jobs N for fewer).
`protection` runs the tiny-job and round-trip programs once with local
slaves (socket pairs, not sealed) and once with 2 slaves started by hand on
loopback TCP with MS_TOKEN (authenticated, every message AES-256-GCM
sealed): the cost of protocol version 2's protection. `waiting_jobs` is
the master's resident memory per tiny job started while no slave is there
to run it (tools/bench/waiting.py). `broadcast` passes one 8 MB vector
to 200 jobs: bytes on the wire and the master's peak over the value's size.

Every time is the best of --repeat runs of a whole process, less the best
time of the same program doing no work (N = 0), so process and slave
start-up are not counted. Machines here are shared and noisy: read ratios,
not absolute times.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]

# name -> (N for the measurement, what the N counts)
KERNELS = {
    "fib": 37,
    "sieve": 10_000_000,
    "matmul": 500,
    "strings": 30_000,
    "structs": 300_000,
    # SPEC 12.3 on 100 MB of text: 10 million pieces.
    "text_split": 10_000_000,
    "text_join": 10_000_000,
    "text_find": 10_000_000,
}
JOBS = {"tiny_jobs": 20_000, "round_trip": 5_000, "large_arg": 10_000_000,
        "wait_any": 1_000_000,
        "protection": 0, "waiting_jobs": 1_000_000, "broadcast": 1_000_000}
BROADCAST_JOBS = 200
TINY_JOBS_BIG = 200_000  # the second fan-out of tiny_jobs (a slope)
WINDOW = 1000  # wait_any: jobs kept in flight
# The secret of the protected runs (slaves on TCP, started by hand).
BENCH_TOKEN = "bench-secret"
# SPEC 13: 10 million int keys inserted and looked up; the words of a
# generated text of 10 million words (about 100 MB) counted. Against a small
# open-addressing table in C, C++'s std::unordered_map and Python's dict.
# map_ints_random: the int keys a 64-bit LCG's values, with no regularity for
# an unkeyed hash to spread evenly (i * 2654435761 is an arithmetic
# progression, which the baselines' multiplicative and identity hashes lay
# out without a collision, and a keyed hash cannot).
MAPS = {"map_ints": 10_000_000, "map_ints_random": 10_000_000,
        "map_words": 10_000_000}
# Crafted keys against random keys, both in M/s: the time of each crafted
# set over the random one's. The keys as M/s expressions of i.
CRAFTED = {"map_crafted": 10_000_000}
CRAFTED_KEYS = {"multiples of 2^32": "i * 4294967296",
                "multiples of 16777213": "i * 16777213"}
RANDOM_KEY = "(i * 6364136223846793005) ^ ((i * 6364136223846793005) >> 29)"


class BenchError(Exception):
    pass


def sh(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))} failed:\n{result.stderr}")
    return result.stdout


def instantiate(template: pathlib.Path, workdir: pathlib.Path, tag: str, **subs) -> pathlib.Path:
    text = template.read_text()
    for key, value in subs.items():
        text = text.replace(f"@{key}@", str(value))
    out = workdir / f"{template.stem}_{tag}{template.suffix}"
    out.write_text(text)
    return out


def build_ms(src: pathlib.Path) -> pathlib.Path:
    name = src.with_suffix("")
    sh([sys.executable, "-m", "compiler", str(src), "-O2", "-o", str(name)],
       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    return pathlib.Path(f"{name}-master")


def build_c(src: pathlib.Path) -> pathlib.Path:
    exe = src.with_suffix("")
    sh(["gcc", "-O2", f"-I{HERE / 'c'}", "-o", str(exe), str(src), "-lm"],
       timeout=120)
    return exe


def best_time(cmd, repeat: int, timeout: float = 600) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise BenchError(f"{cmd[0]} exited {result.returncode}:\n{result.stderr[-2000:]}")
        best, out = min(best, elapsed), result.stdout
    return best, out


def timed_pair(build, template, workdir, repeat, args=(), **subs):
    """Best time of the program at N less the best time at N = 0."""
    work = build(instantiate(template, workdir, "n", **subs))
    idle = build(instantiate(template, workdir, "0", **{**subs, "N": 0}))
    t_work, out = best_time([str(work), *args], repeat)
    t_idle, _ = best_time([str(idle), *args], repeat)
    return max(t_work - t_idle, 1e-9), out.strip()


def build_cpp(src: pathlib.Path) -> pathlib.Path:
    exe = src.with_suffix("")
    sh(["g++", "-O2", "-o", str(exe), str(src)], timeout=120)
    return exe


def build_py(src: pathlib.Path) -> pathlib.Path:
    """A script run by this Python (an executable wrapper)."""
    exe = src.with_suffix(".sh")
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {src}\n")
    exe.chmod(0o755)
    return exe


def run_maps(names, workdir, repeat):
    """The map kernels, each against three baselines, as ratios."""
    for name in names:
        n = MAPS[name]
        t_ms, out = timed_pair(build_ms, HERE / "ms" / f"{name}.ms", workdir,
                               repeat, args=("--spawn", "0"), N=n)
        line = f"{name:10} M/s {t_ms:8.3f} s"
        for label, build, sub, ext in (("C table", build_c, "c", ".c"),
                                       ("C++ unordered_map", build_cpp, "cpp", ".cpp"),
                                       ("Python dict", build_py, "py", ".py"),
                                       ("C table keyed", build_c, "c", "_keyed.c")):
            if not (HERE / sub / f"{name}{ext}").exists():
                continue  # map_ints only: the C table with a keyed hash
            try:
                t, other = timed_pair(build, HERE / sub / f"{name}{ext}", workdir,
                                      repeat, N=n)
            except BenchError as e:
                line += f"   {label}: not measured ({str(e).splitlines()[0][:60]})"
                continue
            differs = "" if other.split() == out.split() else " OUTPUT DIFFERS"
            line += f"   {label} {t:7.3f} s ratio {t_ms / t:5.2f}{differs}"
        print(line, flush=True)


def run_crafted(names, workdir, repeat):
    """map_ints with crafted keys over map_ints with random ones, in M/s."""
    for name in names:
        n = CRAFTED[name]
        template = HERE / "ms" / f"{name}.ms"
        times = {}
        sets = {"random": RANDOM_KEY, **CRAFTED_KEYS}
        for i, (label, key) in enumerate(sets.items()):
            work = build_ms(instantiate(template, workdir, f"keys{i}_n", N=n, KEY=key))
            idle = build_ms(instantiate(template, workdir, f"keys{i}_0", N=0, KEY=key))
            t_work, _ = best_time([str(work), "--spawn", "0"], repeat)
            t_idle, _ = best_time([str(idle), "--spawn", "0"], repeat)
            times[label] = max(t_work - t_idle, 1e-9)
        line = f"{name:10} M/s random keys {times['random']:7.3f} s"
        for label in CRAFTED_KEYS:
            line += (f"   {label} {times[label]:7.3f} s ratio "
                     f"{times[label] / times['random']:5.2f}")
        print(line + "   (goal: 1.0 or less)", flush=True)


def run_kernels(names, workdir, repeat):
    rows = []
    for name in names:
        n = KERNELS[name]
        t_ms, out_ms = timed_pair(build_ms, HERE / "ms" / f"{name}.ms", workdir,
                                  repeat, args=("--spawn", "0"), N=n)
        t_c, out_c = timed_pair(build_c, HERE / "c" / f"{name}.c", workdir, repeat, N=n)
        same = "" if out_ms.split() == out_c.split() or name == "matmul" else "  OUTPUT DIFFERS"
        rows.append((name, t_ms, t_c, t_ms / t_c, same))
        print(f"{name:10} M/s {t_ms:8.3f} s   C -O2 {t_c:8.3f} s   ratio {t_ms / t_c:6.2f}{same}",
              flush=True)
    return rows


def floor(mode: str, n: int) -> float:
    exe = HERE / "tcp_floor"
    if not exe.exists() or exe.stat().st_mtime < (HERE / "tcp_floor.c").stat().st_mtime:
        sh(["gcc", "-O2", "-o", str(exe), str(HERE / "tcp_floor.c")])
    return float(sh([str(exe), mode, str(n)], timeout=300))


def run_jobs(names, workdir, repeat, window_jobs=None):
    slaves = ("--spawn", "2")
    if "tiny_jobs" in names:
        # 20,000 and 200,000 jobs: the rate of each, and the slope between
        # them (what one more job costs, start-up and the first round trips
        # left out), against loopback TCP answering in batches.
        small, big = JOBS["tiny_jobs"], TINY_JOBS_BIG
        template = HERE / "ms" / "tiny_jobs.ms"
        t_small, _ = timed_pair(build_ms, template, workdir, repeat, slaves, N=small)
        t_big, _ = timed_pair(build_ms, template, workdir, repeat, slaves, N=big)
        slope = (big - small) / max(t_big - t_small, 1e-9)
        base = floor("batched", 2_000_000)
        print(f"tiny jobs   M/s {small / t_small:10.0f} jobs/s ({small} jobs), "
              f"{big / t_big:10.0f} jobs/s ({big}), slope {slope:10.0f} jobs/s"
              f"   batched TCP floor {base:10.0f} msgs/s   ratio {slope / base:5.2f}"
              f"   (goal: 1000000 jobs/s)", flush=True)
        others("tiny", small)
    if "round_trip" in names:
        n = JOBS["round_trip"]
        t, _ = timed_pair(build_ms, HERE / "ms" / "round_trip.ms", workdir, repeat, slaves, N=n)
        rtt = t / n * 1e6
        base = floor("pingpong", 20_000)
        print(f"round trip  M/s {rtt:8.1f} us   TCP ping-pong floor {base:8.1f} us"
              f"   ratio {rtt / base:5.2f}   (goal: 1.5 or less)", flush=True)
        others("round", n)
    if "wait_any" in names:
        n = window_jobs or JOBS["wait_any"]
        t_fan, out_fan = timed_pair(build_ms, HERE / "ms" / "tiny_jobs.ms", workdir,
                                    repeat, slaves, N=n)
        t_win, out_win = timed_pair(build_ms, HERE / "ms" / "wait_any_window.ms",
                                    workdir, repeat, slaves, N=n, W=WINDOW)
        same = "" if out_fan == out_win else "  OUTPUT DIFFERS"
        print(f"wait_any    M/s {n / t_win:10.0f} jobs/s with {WINDOW} in flight   "
              f"fan-out {n / t_fan:10.0f} jobs/s   ratio {t_fan / t_win:5.2f}"
              f"   (goal: 0.5 or more; {n} jobs){same}", flush=True)
    if "large_arg" in names:
        n = JOBS["large_arg"]
        template = HERE / "ms" / "large_arg.ms"
        send = build_ms(instantiate(template, workdir, "send", N=n, SEND=1))
        build_only = build_ms(instantiate(template, workdir, "build", N=n, SEND=0))
        t_send, _ = best_time([str(send), *slaves], repeat)
        t_build, _ = best_time([str(build_only), *slaves], repeat)
        mib = n * 8 / 2**20
        bw = mib / max(t_send - t_build, 1e-9)
        base = floor("stream", 1000)
        print(f"large arg   M/s {bw:8.1f} MiB/s   TCP stream floor {base:8.1f} MiB/s"
              f"   ratio {bw / base:5.2f}   (goal: 0.5 or more; includes the job's sum)",
              flush=True)
    if "protection" in names:
        protection_cost(workdir, repeat)
    if "broadcast" in names:
        broadcast(workdir)
    if "waiting_jobs" in names:
        from tools.bench.waiting import bytes_per_job
        n = JOBS["waiting_jobs"]
        template = HERE / "ms" / "waiting_jobs.ms"
        many = build_ms(instantiate(template, workdir, "n", N=n))
        one = build_ms(instantiate(template, workdir, "1", N=1))
        per = bytes_per_job(str(many), str(one), n)
        print(f"waiting     {per:6.1f} bytes per waiting tiny job, {n} jobs, "
              f"no slave (goal: 100 or less; includes the program's vector "
              f"of handles)", flush=True)


def run_hand_started(exe: pathlib.Path, *master_args, slave_args=()):
    """One run of `exe` (a NAME-master) with 2 slaves started by hand on
    loopback TCP with MS_TOKEN (authenticated, every message sealed with
    AES-256-GCM), so that the master is the only process it waits for:
    (seconds from its start to its end, its stderr, its rusage)."""
    env = {**os.environ, "MS_TOKEN": BENCH_TOKEN}
    start = time.perf_counter()
    m = subprocess.Popen([str(exe), "--spawn", "0", "--listen", "127.0.0.1:0",
                          *master_args], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    slaves = []
    try:
        line = m.stderr.readline()
        if "listening on " not in line:
            raise BenchError(f"{exe}: {line}{m.stderr.read()}")
        addr = line.split("listening on ")[1].strip()
        slave = str(exe)[:-len("-master")] + "-slave"
        slaves = [subprocess.Popen([slave, "--master", addr, *slave_args],
                                   env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                  for _ in range(2)]
        err = m.stderr.read()
        _, status, usage = os.wait4(m.pid, 0)
        elapsed = time.perf_counter() - start
        m.returncode = os.waitstatus_to_exitcode(status)
        if m.returncode != 0:
            raise BenchError(f"{exe} exited {m.returncode}:\n{err[-2000:]}")
        return elapsed, err, usage
    finally:
        for p in [m, *slaves]:
            if p.poll() is None:
                p.kill()
            p.wait()


def broadcast(workdir):
    """One 8 MB vector to 200 jobs on 2 slaves: bytes on the wire and the
    master's peak over the value's size (arguments encoded once)."""
    n, jobs = JOBS["broadcast"], BROADCAST_JOBS
    exe = build_ms(instantiate(HERE / "ms" / "broadcast.ms", workdir, "b", N=n, J=jobs))
    value = n * 8 + 4
    elapsed, err, usage = run_hand_started(exe, "--stats")
    sent = int(re.search(r"total over \d+ connections?: sent (\d+) bytes", err).group(1))
    peak = usage.ru_maxrss * 1024
    print(f"broadcast   {value / 1e6:.0f} MB to {jobs} jobs on 2 slaves: {sent / 1e6:8.1f} MB "
          f"sent ({sent / value:5.2f} x the value; {jobs} without sharing), master peak "
          f"{peak / value:5.2f} x the value (goal: 3 or less), {elapsed:.2f} s", flush=True)


def run_protected(exe: pathlib.Path, threads: int) -> float:
    """Seconds of one run of `exe` with 2 slaves on protected TCP."""
    return run_hand_started(exe, slave_args=("--threads", str(threads)))[0]


def protection_cost(workdir, repeat):
    """Tiny-job throughput and round trip with local slaves (socket pairs,
    no MAC, no cipher) beside slaves on TCP with the protection of
    protocol version 2 (SPEC 10): what authentication and sealing cost."""
    threads = max(os.cpu_count() or 1, 2)
    for name, n in (("tiny_jobs", JOBS["tiny_jobs"]),
                    ("round_trip", JOBS["round_trip"])):
        template = HERE / "ms" / f"{name}.ms"
        work = build_ms(instantiate(template, workdir, "pn", N=n))
        idle = build_ms(instantiate(template, workdir, "p0", N=0))
        local = (min(best_time([str(work), "--spawn", "2"], 1)[0]
                     for _ in range(repeat)) -
                 best_time([str(idle), "--spawn", "2"], repeat)[0])
        tcp = (min(run_protected(work, threads) for _ in range(repeat)) -
               min(run_protected(idle, threads) for _ in range(repeat)))
        local, tcp = max(local, 1e-9), max(tcp, 1e-9)
        if name == "tiny_jobs":
            print(f"protection  tiny jobs: local socket pairs {n / local:9.0f} "
                  f"jobs/s, TCP sealed {n / tcp:9.0f} jobs/s   ratio "
                  f"{local / tcp:5.2f}", flush=True)
        else:
            print(f"protection  round trip: local socket pairs "
                  f"{local / n * 1e6:7.1f} us, TCP sealed {tcp / n * 1e6:7.1f} "
                  f"us   ratio {tcp / local:5.2f}", flush=True)


def others_python() -> str:
    """The Python that has Ray and Dask: `make bench` installs them into
    .venv-bench, apart from the compiler's own environment."""
    bench_venv = REPO / ".venv-bench" / "bin" / "python"
    return os.environ.get("MS_BENCH_PYTHON") or (
        str(bench_venv) if bench_venv.exists() else sys.executable)


def others(kind: str, n: int):
    """Ray and Dask doing the same, when they are installed."""
    for system in ("dask", "ray"):
        try:
            out = sh([others_python(), str(HERE / "others.py"), system, kind, str(n)],
                     timeout=600)
            print(f"            {system:5} {out.strip()}", flush=True)
        except BenchError as e:
            reason = str(e).strip().splitlines()[-1][:100]
            print(f"            {system:5} not measured: {reason}", flush=True)
        except subprocess.TimeoutExpired:
            print(f"            {system:5} not measured: timed out", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="M/s benchmarks against C and TCP baselines")
    ap.add_argument("--only", nargs="*",
                    choices=sorted(KERNELS) + sorted(JOBS) + sorted(MAPS) + sorted(CRAFTED))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--window-jobs", type=int, metavar="N",
                    help=f"jobs of the wait_any benchmark (default {JOBS['wait_any']})")
    args = ap.parse_args(argv)
    chosen = args.only or list(KERNELS) + list(JOBS) + list(MAPS) + list(CRAFTED)
    with tempfile.TemporaryDirectory(prefix="ms-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        try:
            run_kernels([k for k in chosen if k in KERNELS], workdir, args.repeat)
            run_jobs([k for k in chosen if k in JOBS], workdir, args.repeat,
                     args.window_jobs)
            run_maps([k for k in chosen if k in MAPS], workdir, args.repeat)
            run_crafted([k for k in chosen if k in CRAFTED], workdir, args.repeat)
        except (BenchError, subprocess.TimeoutExpired) as e:
            print(f"bench: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
