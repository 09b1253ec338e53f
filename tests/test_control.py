"""Controlling jobs in flight (SPEC 12.5) with real processes, where timing
is the point: a cancelled sleeper stops at once, a deadline on an endless
job ends the run promptly, wait_any yields jobs in completion order and
sleeps while it waits, and a job that calls fail is not run again.

The master starts one local slave (`--spawn 1`) whose thread count a
wrapper sets (MS_SLAVE_WRAPPER, as in tests/test_cancel.py), so that a job
started after another can only run once that one gave its thread back.
The timing-independent cases are golden programs in tests/golden/control/.
"""
from __future__ import annotations

import re
import resource
import time

import pytest

from harness import REPO, build_program, build_programs, clean_env, run_master

RUN_TIMEOUT = 60

PROGRAMS = {
    # One thread: quick can run only once the sleeper has stopped.
    "sleeper": """
        job int nap(double s) { print("nap started"); sleep(s); return 1; }
        job int quick(int x) { return x + 1; }
        master {
            print(get(remote quick(0)));
            job<int> j = remote nap(60.0);
            sleep(0.3);
            double t0 = clock();
            cancel(j);
            print(state(j));
            print(get(remote quick(41)));
            print(clock() - t0 < 10.0);
        }""",
    "deadline": """
        job int spin(int x) { print("spin started"); while (true) { x += 1; } }
        job int quick(int x) { return x + 1; }
        master {
            print(get(remote quick(0)));
            job<int> j = remote spin(0);
            print(wait(j, 0.3));
            cancel(j);
            print(error(j));
            print(get(remote quick(41)));
        }""",
    # Three threads, three sleepers ending in the order 1, 2, 0.
    "completion_order": """
        job int nap(double s) { sleep(s); return int(s * 10.0); }
        master {
            vector<job<int>> js;
            js :: remote nap(2.0) :: remote nap(0.2) :: remote nap(1.0);
            job<int> none;
            for (int i = wait_any(js); i >= 0; i = wait_any(js)) {
                print(i);
                print(get(js[i]));
                js[i] = none;
            }
        }""",
    "idle_wait": """
        job int nap(double s) { sleep(s); return 1; }
        master {
            vector<job<int>> js;
            js :: remote nap(1.5);
            print(wait_any(js, 0.5));
            print(wait_any(js));
            print(wait(js[0], 0.0));
        }""",
    "fail_once": """
        job int check(int x) {
            print("check ran");
            if (x > 0) fail("no thanks");
            return x;
        }
        master {
            job<int> j = remote check(1);
            print(wait(j, 30.0));
            print(error(j));
        }""",
}


@pytest.fixture(scope="module")
def progs(tmp_path_factory, runtime_built):
    return build_programs(tmp_path_factory.mktemp("control"), PROGRAMS)


def threads_env(tmp_path, n: int) -> dict:
    wrapper = tmp_path / f"threads-{n}"
    wrapper.write_text(f'#!/bin/sh\nexec "$@" --threads {n}\n')
    wrapper.chmod(0o755)
    return clean_env({"MS_SLAVE_WRAPPER": str(wrapper)})


def run(progs, tmp_path, name, threads=1):
    return run_master(progs[name], "--spawn", "1", "--stats",
                      timeout=RUN_TIMEOUT, env=threads_env(tmp_path, threads))


STATS_SLAVE = re.compile(
    r"stats: slave \d+ at \S+ \(pid \d+, local, \d+ threads?\): "
    r"ran (\d+) jobs? \((\d+) finished, (\d+) failed, (\d+) cancelled\), "
    r"(\d+) retried")


def slave_answers(stderr: str) -> tuple[int, int, int, int]:
    """The one slave's (finished, failed, cancelled, retried) from --stats."""
    found = STATS_SLAVE.findall(stderr)
    assert len(found) == 1, stderr
    return tuple(map(int, found[0][1:]))


@pytest.mark.parametrize("name,stdout", [
    # The slave answers CANCELLED at once (its only thread then runs
    # quick), not after the 60 s of the sleep.
    ("sleeper", "1\ncancelled\n42\ntrue\n"),
    # wait's deadline passes; the cancelled loop gives its thread back.
    ("deadline", "1\nfalse\ncancelled\n42\n"),
])
def test_cancelled_job_stops_at_once(progs, tmp_path, name, stdout):
    start = time.monotonic()
    r = run(progs, tmp_path, name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == stdout
    assert "started" in r.stderr
    assert slave_answers(r.stderr) == (2, 0, 1, 0)
    assert time.monotonic() - start < 30


def test_wait_any_yields_jobs_in_completion_order(progs, tmp_path):
    r = run(progs, tmp_path, "completion_order", threads=3)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n2\n2\n10\n0\n20\n"


def test_wait_any_sleeps_while_it_waits(progs, tmp_path):
    """2 s of waiting (a 0.5 s timeout, then until the job ends) take
    little CPU time, master and slave together: no busy loop."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run(progs, tmp_path, "idle_wait")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "-1\n0\ntrue\n"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.5, f"{cpu:.2f} s of CPU time"


def test_failed_job_is_not_run_again(progs, tmp_path):
    """fail in a job fails it once: it ran once, the slave answered failed,
    nothing was retried."""
    r = run(progs, tmp_path, "fail_once")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "true\nfail_once.ms:4:24: no thanks\n"
    assert r.stderr.count("check ran") == 1
    assert slave_answers(r.stderr) == (0, 1, 0, 0)


def test_deadline_example(tmp_path, runtime_built):
    """examples/deadline.ms reports the failed and the late jobs and ends
    normally, soon after its 2 s deadline."""
    prefix = build_program(REPO / "examples" / "deadline.ms", tmp_path / "deadline")
    start = time.monotonic()
    r = run_master(prefix, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[2] == ("job 2 failed: deadline.ms:10:17: collatz_steps needs "
                        "a positive number, not 0")
    assert lines[3] == "job 3 failed: deadline.ms:15:28: 433 took more than 150 steps"
    assert lines[-2] == "job 6: no answer within 2 s, cancelled"
    assert lines[-1] == "4 failed, 1 timed out, of 7"
    assert time.monotonic() - start < 30
