"""Watching a run (SPEC 14): the master's --trace FILE (Chrome trace
events: a span per job attempt on a track per slave lane, instants for
slaves joining and leaving) checked by parsing the file against the jobs
that ran; and --progress, a status line on a terminal's stderr (a
pseudo-terminal here), updated, kept apart from every other line and erased
at the end, and absent when stderr is a pipe."""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

import fakepeer as fp
from harness import (build_programs, clean_env, kill_group, run_master,
                     wait_busy)

PROGRAMS = {
    # 12 short jobs on two slaves, one that fails, one cancelled while it
    # runs; the master says on stderr when it is half way.
    "mixed": """
job int nap(int i, double s) {
    sleep(s);
    return i * 2;
}
job int boom(int x) {
    vector<int> v;
    return v[x];
}
master {
    vector<job<int>> js;
    for (int i = 0; i < 12; i += 1) {
        js :: remote nap(i, 0.05);
    }
    job<int> b = remote boom(3);
    job<int> long = remote nap(99, 30.0);
    int total = 0;
    for (int i = 0; i < 12; i += 1) {
        total = total + get(js[i]);
        if (i == 5) {
            eprint("half way");
        }
    }
    print(total);
    while (state(b) == running) {
    }
    print(state(b));
    cancel(long);
    print(state(long));
}
""",
    # A short job, then a long one (the test kills the slave running it).
    "one_long": """
job int spin(int seed, int n) {
    int x = seed;
    for (int i = 0; i < n; i += 1) {
        x = x * 6364136223846793005 + 1442695040888963407;
    }
    return x;
}
master {
    print(get(remote spin(1, 1000)) != 0);
    print(get(remote spin(7, 2500000000)) != 0);
}
""",
    # A job's result, then a runtime error in the master block.
    "then_error": """
job int twice(int x) {
    sleep(0.5);
    return 2 * x;
}
master {
    print(get(remote twice(21)));
    vector<int> v;
    print(v[5]);
}
""",
    # A job's result, then the master block overflows its stack.
    "overflow": """
job int twice(int x) {
    sleep(0.5);
    return 2 * x;
}
int down(int n) {
    return down(n + 1) + 1;
}
master {
    print(get(remote twice(21)));
    print(down(0));
}
""",
    # About 1.2 s of jobs, with lines on stderr from the master meanwhile.
    "slow": """
job int nap(int i) {
    sleep(0.15);
    return i;
}
master {
    int total = 0;
    for (int round = 0; round < 8; round += 1) {
        job<int> a = remote nap(round);
        job<int> b = remote nap(round + 10);
        total = total + get(a) + get(b);
        eprint("round " + str(round) + " done");
    }
    print(total);
}
""",
}


@pytest.fixture(scope="module")
def progs(tmp_path_factory, runtime_built):
    return build_programs(tmp_path_factory.mktemp("watch"), PROGRAMS)


# ------------------------------------------------------------- --trace

def load_trace(path):
    events = json.loads(path.read_text())
    assert isinstance(events, list)
    spans = [e for e in events if e["ph"] == "X"]
    meta = [e for e in events if e["ph"] == "M"]
    instants = [e for e in events if e["ph"] == "i"]
    assert len(spans) + len(meta) + len(instants) == len(events), events
    return spans, meta, instants


def check_tracks(spans, meta, instants):
    """Every span and instant is on a named track of a named process, and
    spans on one track never overlap."""
    procs = {e["pid"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in meta if e["name"] == "thread_name"}
    by_track: dict[tuple[int, int], list] = {}
    for e in spans:
        assert e["pid"] in procs and (e["pid"], e["tid"]) in threads, e
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int), e
        assert e["ts"] >= 0 and e["dur"] >= 0, e
        assert e["args"]["jid"] > 0 and e["args"]["attempt"] >= 1, e
        by_track.setdefault((e["pid"], e["tid"]), []).append(e)
    for e in instants:
        assert (e["pid"], e["tid"]) in threads and e["s"] == "p", e
    for track, es in by_track.items():
        es.sort(key=lambda e: e["ts"])
        for a, b in zip(es, es[1:]):
            assert a["ts"] + a["dur"] <= b["ts"], (track, a, b)


def test_trace_has_a_span_per_attempt_with_its_outcome(progs, tmp_path):
    trace = tmp_path / "t.json"
    r = run_master(progs["mixed"], "--spawn", 2, "--trace", trace,
                   timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{sum(2 * i for i in range(12))}\nfailed\ncancelled\n"
    spans, meta, instants = load_trace(trace)
    check_tracks(spans, meta, instants)
    assert sorted(e["args"]["jid"] for e in spans) == list(range(1, 15))
    assert all(e["args"]["attempt"] == 1 for e in spans)
    by_jid = {e["args"]["jid"]: e for e in spans}
    for jid in range(1, 13):
        e = by_jid[jid]
        assert e["name"] == "nap" and e["args"]["outcome"] == "ok", e
        # The job sleeps 50 ms; its arguments are an int and a double, its
        # result an int.
        assert e["dur"] >= 50_000, e
        assert e["args"]["bytes_to_slave"] == 16, e
        assert e["args"]["bytes_from_slave"] == 8, e
    assert by_jid[13]["name"] == "boom"
    assert by_jid[13]["args"]["outcome"] == "failed"
    assert by_jid[13]["args"]["bytes_from_slave"] > 0
    assert by_jid[14]["name"] == "nap"
    assert by_jid[14]["args"]["outcome"] == "cancelled"
    # Both slaves joined and left at the end, each on its own process.
    joined = sorted(e["pid"] for e in instants if e["name"] == "slave joined")
    left = sorted(e["pid"] for e in instants if e["name"] == "slave left")
    assert len(joined) == 2 and joined == left, instants
    assert {e["pid"] for e in spans} <= set(joined)
    assert not [e for e in instants if e["name"] == "slave lost"]


def test_trace_shows_a_job_rerun_after_its_slave_was_killed(progs, tmp_path,
                                                           start):
    trace = tmp_path / "t.json"
    m = start([f"{progs['one_long']}-master", "--listen", "127.0.0.1:0",
               "--spawn", "0", "--verbose", "--trace", str(trace)],
              env=fp.TOKEN_ENV)
    addr = m.wait_err(r"listening on (\S+)").group(1)
    slaves = [start([f"{progs['one_long']}-slave", "--master", addr,
                     "--threads", "1"], env=fp.TOKEN_ENV) for _ in range(2)]
    m.wait_err(r"slave \d+ joined", count=2)
    busy = wait_busy([s.pid for s in slaves])
    os.kill(busy, signal.SIGKILL)
    assert m.finish() == 0, m.err
    assert m.out == "true\ntrue\n"
    lost = re.search(rf"lost slave (\d+) at \S+ \(pid {busy}\)", m.err)
    assert lost, m.err
    lost_id = int(lost[1])
    spans, meta, instants = load_trace(trace)
    check_tracks(spans, meta, instants)
    assert [e["args"]["jid"] for e in spans].count(1) == 1
    long = sorted((e for e in spans if e["args"]["jid"] == 2),
                  key=lambda e: e["args"]["attempt"])
    assert [e["args"]["attempt"] for e in long] == [1, 2], long
    assert long[0]["args"]["outcome"] == "lost"
    assert long[0]["pid"] == lost_id
    assert long[1]["args"]["outcome"] == "ok"
    assert long[1]["pid"] != lost_id
    assert long[1]["ts"] >= long[0]["ts"] + long[0]["dur"]
    assert [e["pid"] for e in instants if e["name"] == "slave lost"] == \
        [lost_id]
    assert [e for e in instants if e["name"] == "slave joined"
            and e["args"]["pid"] == busy]


def test_trace_is_complete_after_a_runtime_error(progs, tmp_path):
    trace = tmp_path / "t.json"
    r = run_master(progs["then_error"], "--spawn", 1, "--trace", trace,
                   timeout=60, env=clean_env())
    assert r.returncode == 1, r.stderr
    assert "runtime error" in r.stderr
    spans, meta, instants = load_trace(trace)
    check_tracks(spans, meta, instants)
    assert [(e["name"], e["args"]["outcome"]) for e in spans] == \
        [("twice", "ok")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_trace_is_complete_when_a_signal_ends_the_run(progs, tmp_path, start,
                                                      sig):
    trace = tmp_path / "t.json"
    m = start([f"{progs['one_long']}-master", "--spawn", "1", "--verbose",
               "--trace", str(trace)])
    m.wait_err(r"slave \d+ joined")
    slave = int(m.wait_err(r"joined from \S+ \(pid (\d+)").group(1))
    wait_busy([slave], seconds=0.2)  # the long job runs
    os.kill(m.pid, sig)
    assert m.finish() == 128 + sig, m.err
    spans, meta, instants = load_trace(trace)
    check_tracks(spans, meta, instants)
    assert [(e["args"]["jid"], e["args"]["outcome"]) for e in spans] == \
        [(1, "ok"), (2, "abandoned")]
    assert [e["name"] for e in instants] == ["slave joined", "slave left"]


def test_trace_file_that_cannot_be_written_is_an_error(progs, tmp_path):
    r = run_master(progs["then_error"], "--trace", tmp_path / "no" / "t.json",
                   timeout=60, env=clean_env())
    assert r.returncode == 1
    assert re.search(r"error: --trace \S+t\.json: No such file", r.stderr)
    assert r.stdout == ""


# ---------------------------------------------------------- --progress

ERASE = "\r\x1b[K"


def screen(stream: str) -> list[str]:
    """The lines a terminal shows after `stream`: text, \\r (to the start
    of the line), ESC[K (clear to its end), \\n (the next line)."""
    lines, cur, col = [], [], 0
    i = 0
    while i < len(stream):
        if stream.startswith("\x1b[K", i):
            del cur[col:]
            i += 3
            continue
        ch = stream[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        else:
            assert ch != "\x1b", stream[i - 1:i + 10]
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
    if cur:
        lines.append("".join(cur))
    return lines


STATUS = re.compile(r"slow-master: jobs (\d+) finished, (\d+) running, "
                    r"(\d+) waiting, (\d+) failed; (\d+) slaves?, (\d+) "
                    r"threads?; \d+:\d\d\.\d$")


def run_on_terminal(cmd, timeout=60):
    """Run `cmd` with stderr a pseudo-terminal of 200 columns (a new one
    says 0, and the master then assumes 80 and cuts the line to fit) and
    stdout a pipe; (exit status, stdout, what the terminal received)."""
    master_fd, slave_fd = os.openpty()
    fcntl.ioctl(slave_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(list(map(str, cmd)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave_fd,
                            env=clean_env(), start_new_session=True)
    os.close(slave_fd)
    chunks = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master_fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master_fd, 65536)
            except OSError:  # EIO: every writer closed it
                break
            if not data:
                break
            chunks.append(data)
        out = proc.stdout.read()
        rc = proc.wait(timeout=30)
    finally:
        os.close(master_fd)
        kill_group(proc)
    return rc, out, b"".join(chunks).decode()


def test_progress_on_a_terminal_is_updated_and_erased(progs):
    rc, out, stream = run_on_terminal([f"{progs['slow']}-master", "--spawn",
                                       2, "--progress", "--stats"])
    assert rc == 0, stream
    assert out == str(sum(r + r + 10 for r in range(8))).encode() + b"\n"
    # The status line was drawn several times, with changing counts.
    drawn = [s.split("\r")[0].split("\x1b")[0]
             for s in stream.split(ERASE)[1:]]
    statuses = [m for m in map(STATUS.match, drawn) if m]
    assert len(statuses) >= 3, stream
    assert all(len(s) < 200 for s in drawn), stream
    assert len({m[1] for m in statuses}) >= 2, stream
    assert any(int(m[5]) == 2 and int(m[6]) >= 2 for m in statuses), stream
    # What the terminal shows at the end: the master's lines, each whole,
    # and no status line (erased at the end and before every other line).
    shown = [line for line in screen(stream) if line]
    assert not [line for line in shown if " running, " in line], shown
    rounds = [line for line in shown if line.startswith("round")]
    assert rounds == [f"round {r} done" for r in range(8)], shown
    stats = [line for line in shown if "stats:" in line]
    assert stats and all(line.startswith("slow-master: stats: ")
                         for line in stats), shown
    assert len(rounds) + len(stats) == len(shown), shown


@pytest.mark.parametrize("name, last", [
    ("then_error", "then_error.ms:9:12: runtime error: index 5 out of bounds "
                   "for length 0"),
    ("overflow", "overflow.ms:7:12: runtime error: stack overflow"),
])
def test_progress_is_erased_before_a_runtime_error(progs, name, last):
    rc, out, stream = run_on_terminal([f"{progs[name]}-master", "--spawn", 1,
                                       "--progress"])
    assert rc == 1, stream
    assert out == b"42\n"
    assert ERASE + f"{name}-master: jobs" in stream, stream
    shown = [line for line in screen(stream) if line]
    assert shown == [last], shown


def test_progress_with_stderr_a_pipe_writes_nothing_extra(progs):
    r = run_master(progs["slow"], "--spawn", 2, "--progress", timeout=60,
                   env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stderr == "".join(f"round {k} done\n" for k in range(8))
