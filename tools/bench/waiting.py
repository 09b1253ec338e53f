"""Bytes per waiting job: the master's resident size with N tiny jobs
started and no slave to take them, less the same with one job, over N - 1.

    python -m tools.bench.waiting MASTER_N MASTER_1 N

Shared by `tools.bench.run --only waiting_jobs` and tests/test_scaling.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

TOKEN = "bench-waiting-secret"


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def rss_when_started(master: str, timeout: float = 120) -> int:
    """KiB resident once `master` (a waiting_jobs.ms build) has started
    all its jobs and waits for a slave that never comes."""
    env = {**os.environ, "MS_TOKEN": TOKEN}
    p = subprocess.Popen([master, "--spawn", "0", "--listen", "127.0.0.1:0"],
                         env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        for line in p.stderr:
            if line.startswith("started "):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{master}: no 'started' line in {timeout} s")
        else:
            raise RuntimeError(f"{master} ended before starting its jobs "
                               f"(status {p.wait()})")
        time.sleep(0.2)  # let the I/O thread settle
        return resident_kib(p.pid)
    finally:
        p.kill()
        p.wait()


def bytes_per_job(master_n: str, master_1: str, n: int) -> float:
    return (rss_when_started(master_n) - rss_when_started(master_1)) * 1024 / (n - 1)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    print(f"{bytes_per_job(sys.argv[1], sys.argv[2], int(sys.argv[3])):.1f}")
