"""The whole `cancel` lifecycle (SPEC sections 6 and 7) with real compiled
programs on loopback, where one slave thread makes the order of events
certain:

- the master starts one local slave (`--spawn 1`) that runs one job at a
  time (MS_SLAVE_WRAPPER adds `--threads 1` to its command line), so a job
  started behind an endless one stays pending, and a job started after a
  cancel can only finish once the cancelled job gave its thread back;
- what jobs print goes to the slave's stdout, which is the master's stderr:
  that shows whether a job ran at all;
- `--stats` shows how the slave answered each job (finished, cancelled);
- a fake slave (tests/fakepeer.py) answers a cancelled job anyway, to
  show that a late result is discarded.

Every process runs in its own session, bounded in time, and none may be
left behind (tests/harness.py).

The timing-independent cases (cancel of a finished, failed, unset or
cancelled job, get on a cancelled job, many endless jobs) are golden
programs in tests/golden/cancel/.
"""
from __future__ import annotations

import re
import struct

import pytest

import fakepeer as fp
from harness import build_programs, clean_env, run_master

RUN_TIMEOUT = 60

# A few hundred milliseconds of master work that LLVM cannot shortcut (a
# linear congruential generator), so that a job sent meanwhile is running
# by the time the master cancels it.
WAIT = """
int wait_a_while(int n) {
    int x = 1;
    for (int i = 0; i < n; i += 1) x = x * 6364136223846793005 + 1442695040888963407;
    return x;
}
"""
WAIT_CALL = "if (wait_a_while(300000000) == 0) print(\"never\");"

ENDLESS = {
    "loop": "job int busy(int x) { print(\"busy started\"); while (true) { } }",
    # Naive fib(90) would take centuries; its recursion is shallow, so only
    # the check at the entry of fib can stop it.
    "recursion": """
        int fib(int n) { if (n < 2) return n; return fib(n - 1) + fib(n - 2); }
        job int busy(int x) { print("busy started"); return fib(90 + x); }""",
    # Counted loops poll once per chunk of iterations (codegen's
    # stmt_For), here one indexing a vector...
    "counted": """
        job int busy(int x) {
            print("busy started");
            vector<int> v;
            for (int i = 0; i < 100; i += 1) v :: i;
            int acc = x;
            for (int r = 0; r < 1000000000000; r += 1) acc += v[r % 100];
            return acc;
        }""",
    # ... and one up to the top of the int range, always true: i wraps, its
    # last chunks before the wrap are single iterations.
    "top": """
        job int busy(int x) {
            print("busy started");
            int acc = x;
            for (int i = 9223372036854775000; i <= 9223372036854775807; i += 1)
                acc = acc * 6364136223846793005 + i;
            return acc;
        }""",
    # Nested loops through a helper; the inner one continues every other time.
    "nested": """
        int inner(int x) {
            for (int i = 0; i < 1000000000000; i += 1) {
                x = x * 6364136223846793005 + 1442695040888963407;
                if (x % 2 == 0) continue;
                x += 1;
            }
            return x;
        }
        job int busy(int x) {
            print("busy started");
            int acc = 0;
            for (int r = 0; r < 1000000; r += 1) acc += inner(x + r);
            return acc;
        }""",
}

QUICK = "job int quick(int x) { return x + 1; }"

PROGRAMS = {
    f"running_{kind}": f"""
        {body}
        {QUICK}
        {WAIT}
        master {{
            print(get(remote quick(0)));
            job<int> j = remote busy(1);
            {WAIT_CALL}
            cancel(j);
            print(state(j));
            print(get(remote quick(41)));
            print(state(j));
        }}""" for kind, body in ENDLESS.items()
} | {
    "pending": f"""
        {ENDLESS["loop"]}
        job int marker(int x) {{ print("marker ran"); return x; }}
        {QUICK}
        master {{
            print(get(remote quick(0)));
            job<int> a = remote busy(1);
            job<int> b = remote marker(2);
            cancel(b);
            print(state(b));
            cancel(a);
            print(state(a));
            print(get(remote quick(41)));
            print(state(b));
            print(get(b));
        }}""",
    "dropped_handle": f"""
        job int work(int n) {{
            int x = 1;
            for (int i = 0; i < n; i += 1) x = x * 6364136223846793005 + 1442695040888963407;
            print("work done");
            return x;
        }}
        {QUICK}
        master {{
            print(get(remote quick(0)));
            {{
                job<int> only = remote work(200000000);
            }}
            print(get(remote quick(41)));
        }}""",
    "late_result": """
        job int slow(int x) { while (true) { } }
        job int quick(int x) { return x + 1; }
        master {
            print(get(remote quick(0)));
            job<int> a = remote slow(1);
            job<int> b = remote quick(1);
            print(get(b));
            cancel(a);
            print(state(a));
            print(get(remote quick(41)));
            print(state(a));
            print(get(a));
        }""",
}


@pytest.fixture(scope="module")
def progs(tmp_path_factory, runtime_built):
    """name -> path prefix of NAME-master and NAME-slave."""
    return build_programs(tmp_path_factory.mktemp("cancel"), PROGRAMS)


@pytest.fixture(scope="module")
def one_thread_env(tmp_path_factory):
    """An environment whose local slaves run one job at a time."""
    wrapper = tmp_path_factory.mktemp("wrap") / "one-thread"
    wrapper.write_text('#!/bin/sh\nexec "$@" --threads 1\n')
    wrapper.chmod(0o755)
    return clean_env({"MS_SLAVE_WRAPPER": str(wrapper)})


def run_one_thread(progs, env, name):
    return run_master(progs[name], "--spawn", "1", "--stats",
                      timeout=RUN_TIMEOUT, env=env)


STATS_SLAVE = re.compile(
    r"stats: slave \d+ at \S+ \(pid \d+, local, (\d+) threads?\): "
    r"ran (\d+) jobs? \((\d+) finished, (\d+) failed, (\d+) cancelled\)")


def slave_answers(stderr: str) -> tuple[int, int, int, int]:
    """The one slave's (threads, finished, failed, cancelled) from --stats."""
    found = STATS_SLAVE.findall(stderr)
    assert len(found) == 1, stderr
    threads, _, finished, failed, cancelled = map(int, found[0])
    assert ("1 thread)" in stderr) == (threads == 1), stderr
    return threads, finished, failed, cancelled


@pytest.mark.parametrize("kind", sorted(ENDLESS))
def test_cancel_running_endless_job_frees_its_thread(progs, one_thread_env,
                                                     kind):
    """The job was running (it printed), cancel made it cancelled at once,
    and the only slave thread then ran another job to its result."""
    r = run_one_thread(progs, one_thread_env, f"running_{kind}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\ncancelled\n42\ncancelled\n"
    assert "busy started" in r.stderr
    assert slave_answers(r.stderr) == (1, 2, 0, 1)
    assert re.search(r"^running_\w+-master: stats: 3 jobs started, 2 finished, 0 "
                     r"failed, 1 cancelled, 0 rerun after a lost slave; 1 "
                     r"cancelled after being sent to a slave; run time \d+\.\d{3} s$",
                     r.stderr, re.M), r.stderr


def test_cancel_pending_job_never_runs(progs, one_thread_env):
    """A job queued behind an endless one on the only thread: cancelled at
    once, never started, and get on it is the runtime error."""
    r = run_one_thread(progs, one_thread_env, "pending")
    assert r.returncode == 1, r.stderr
    assert r.stdout == "1\ncancelled\ncancelled\n42\ncancelled\n"
    assert "marker ran" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "runtime error" in line]
    assert errors == [f"pending.ms:15:19: runtime error: job 'marker' was "
                      "cancelled"]
    threads, finished, failed, cancelled = slave_answers(r.stderr)
    assert (threads, finished, failed) == (1, 2, 0)
    # `busy` was cancelled on the slave; `marker` either there (queued) or
    # in the master before it was ever sent.
    assert cancelled in (1, 2)
    # Both were cancelled; `busy` after it was sent, `marker` in the slave's
    # queue (sent) or in the master's (not sent), as the slave answered.
    assert re.search(rf"stats: 4 jobs started, 2 finished, 0 failed, 2 "
                     rf"cancelled, 0 rerun after a lost slave; {cancelled} "
                     r"cancelled after being sent to a slave; run time",
                     r.stderr), r.stderr


def test_dropping_the_last_handle_does_not_cancel(progs, one_thread_env):
    """SPEC 6: the job whose only handle went out of scope runs to its end
    (it prints), and its result is discarded."""
    r = run_one_thread(progs, one_thread_env, "dropped_handle")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n42\n"
    assert "work done" in r.stderr
    assert slave_answers(r.stderr) == (1, 3, 0, 0)


# ------------------------------------------------------------ fake slave

def test_result_of_a_job_cancelled_while_running_is_discarded(progs, start):
    """The slave answers a cancelled job with a result anyway (as a real
    one does when the job ends before it sees the cancel): the master
    counts the answer, keeps the job cancelled, and get on it fails."""
    proc = start([f"{progs['late_result']}-master", "--listen", "127.0.0.1:0",
                  "--spawn", "0", "--stats"], env=fp.TOKEN_ENV)
    addr = proc.wait_err(r"listening on (\S+)", timeout=20).group(1)
    slave = fp.FakeSlave(addr, threads=2, timeout=20, secret=fp.TOKEN)
    slow, quick = 1, 2                        # the jobs' ordinals
    ordinal, jid, args = slave.next_message()  # get(remote quick(0))
    assert ordinal == quick
    slave.answer_int(quick, jid, struct.unpack("<q", args)[0] + 1)
    ordinal, slow_jid, _ = slave.next_message()  # a = remote slow(1)
    assert ordinal == slow
    ordinal, jid, args = slave.next_message()  # b = remote quick(1)
    assert ordinal == quick
    slave.answer_int(quick, jid, struct.unpack("<q", args)[0] + 1)
    # The master got b, so it sent a before: cancel(a) reaches us.
    ordinal, jid, payload = slave.next_message()
    assert (ordinal, jid, payload) == (0, slow_jid, bytes([fp.CANCEL]))
    ordinal, last_jid, args = slave.next_message()  # quick(41)
    assert ordinal == quick
    slave.answer_int(slow, slow_jid, 999)     # too late: discarded
    slave.answer_int(quick, last_jid, struct.unpack("<q", args)[0] + 1)
    assert slave.next_message() == (0, 0, bytes([fp.GOODBYE]))
    slave.close()
    assert proc.finish(timeout=RUN_TIMEOUT) == 1, proc.err
    err = proc.err
    assert proc.out == "1\n2\ncancelled\n42\ncancelled\n"
    assert ("late_result.ms:13:19: runtime error: job 'slow' was cancelled"
            in err)
    m = re.search(r"stats: slave \d+ at \S+ \(pid \d+, remote, 2 threads\): "
                  r"ran (\d+) jobs \((\d+) finished, (\d+) failed, "
                  r"(\d+) cancelled\)", err)
    assert m, err
    assert m.groups() == ("4", "4", "0", "0"), err
