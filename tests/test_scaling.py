"""Scaling checks that are not timings (issue 13): the master's memory per
job waiting for a slave."""
import pathlib

from tests.harness import build_program
from tools.bench.waiting import bytes_per_job

TEMPLATE = (pathlib.Path(__file__).resolve().parents[1] / "tools" / "bench" /
            "ms" / "waiting_jobs.ms").read_text()
JOBS = 300_000


def test_a_waiting_tiny_job_takes_at_most_100_bytes(tmp_path):
    masters = []
    for n in (JOBS, 1):
        src = tmp_path / f"waiting{n}.ms"
        src.write_text(TEMPLATE.replace("@N@", str(n)))
        prefix = build_program(src, tmp_path / f"waiting{n}", "-O2")
        masters.append(f"{prefix}-master")
    per = bytes_per_job(masters[0], masters[1], JOBS)
    # Job record with its arguments inline (80 bytes) and the program's
    # vector of handles (8 to 16 bytes each); it was 200 before.
    assert per <= 100, f"{per:.1f} bytes per waiting job"
