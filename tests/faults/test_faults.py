"""Fault scenarios with real compiled M/s programs (tests/faults/*.ms) on
loopback: slaves killed, stopped, started early, built from another
program; garbage thrown at the master's port while a program runs and at a
slave (from tests/fakepeer.py's fake master); retries exhausted; the master
stopped by a signal or by a runtime error; a job overflowing its stack;
local slaves dying and being replaced.

Each test checks the master's stdout and exit status, what both sides log,
that every process ends in bounded time, and that none is left behind (each
process runs in its own session; local slaves share their master's).

The jobs are loops of a 64-bit linear congruential generator, which the
compiler cannot shortcut and Python computes in O(log n) (`lcg` below), so
a job's length is set by its count and its result is known exactly.
"""
from __future__ import annotations

import os
import pathlib
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest

import fakepeer as fp
from harness import build_program_dir, children_of, wait_busy

HERE = pathlib.Path(__file__).resolve().parent
TOKEN_ENV = fp.TOKEN_ENV  # the secret of a master and its hand-started slaves


# ------------------------------------------------------------ programs

def lcg(seed: int, n: int) -> int:
    """x = x * A + C (mod 2**64) n times from seed, as a signed int64."""
    mod = 1 << 64
    a, c = 6364136223846793005, 1442695040888963407
    mul, add = 1, 0            # the composed map x -> mul * x + add
    pa, pc = a, c              # the map applied 2**k times
    while n:
        if n & 1:
            mul, add = pa * mul % mod, (pa * add + pc) % mod
        pa, pc = pa * pa % mod, (pa * pc + pc) % mod
        n >>= 1
    r = (mul * seed + add) % mod
    return r - mod if r >= 1 << 63 else r


def c_rem(a: int, b: int) -> int:
    """C's (and M/s's) %: the sign of the dividend."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    """Every tests/faults/*.ms compiled; name -> path prefix of NAME-master."""
    return build_program_dir(HERE, tmp_path_factory.mktemp("faults"))


def master_cmd(progs, name, *args):
    return [f"{progs[name]}-master", *map(str, args)]


def slave_cmd(progs, name, addr, *args):
    return [f"{progs[name]}-slave", "--master", addr, *map(str, args)]


@pytest.fixture
def start(start):
    """conftest's `start`, every process given the tests' secret
    (MS_TOKEN), as a user starting slaves by hand would; with token=False,
    no secret (for the tests of a master given none)."""
    def run(cmd, env=None, token=True, **kw):
        return start(cmd, env={**(fp.TOKEN_ENV if token else {}),
                               **(env or {})}, **kw)
    return run


# ------------------------------------------------------------ processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(m) -> str:
    return m.wait_err(r"listening on (\S+)").group(1)


# ------------------------------------------------------- lost slaves

ONE_LONG_OUT = f"{lcg(1, 1000)}\n{lcg(7, 2_500_000_000)}\n"


def _two_hand_slaves(start, progs, name, *master_args):
    m = start(master_cmd(progs, name, "--listen", "127.0.0.1:0", "--spawn", 0,
                         "--verbose", *master_args), env=TOKEN_ENV)
    addr = listening(m)
    slaves = [start(slave_cmd(progs, name, addr, "--threads", 1),
                    env=TOKEN_ENV)
              for _ in range(2)]
    m.wait_err(r"slave \d+ joined", count=2)
    return m, slaves


STATS_SLAVE = re.compile(
    r"stats: slave \d+ at \S+ \(pid (\d+), (local|remote), \d+ threads?\): "
    r"ran (\d+) jobs? \((\d+) finished, (\d+) failed, (\d+) cancelled\), "
    r"(\d+) retried elsewhere after it was lost; sent (\d+) bytes, received "
    r"(\d+) bytes; started (?:locally|by hand), ran on \S+$", re.M)
STATS_TOTAL = re.compile(r"stats: total over (\d+) connections: sent (\d+) "
                         r"bytes, received (\d+) bytes$", re.M)


def slave_stats(err: str) -> dict[int, tuple[int, ...]]:
    """--stats per slave: pid -> (ran, finished, failed, cancelled, retried,
    bytes sent to it, bytes received from it)."""
    return {int(m[1]): tuple(int(x) for x in m.groups()[2:])
            for m in STATS_SLAVE.finditer(err)}


def test_slave_killed_mid_job_the_job_completes_elsewhere(start, progs):
    m, slaves = _two_hand_slaves(start, progs, "one_long", "--stats")
    busy = wait_busy([s.pid for s in slaves])
    os.kill(busy, signal.SIGKILL)
    assert m.finish() == 0, m.err
    assert m.out == ONE_LONG_OUT
    assert re.search(rf"lost slave \d+ at \S+ \(pid {busy}\): connection "
                     r"closed; 1 of its jobs to run again", m.err), m.err
    other = next(s for s in slaves if s.pid != busy)
    assert other.finish() == 0, other.err
    # --stats: the killed slave's long job was retried on the other one.
    st = slave_stats(m.err)
    assert set(st) == {busy, other.pid}, m.err
    assert st[busy][4] == 1, m.err
    assert st[other.pid][4] == 0, m.err
    assert st[busy][0] + st[other.pid][0] == 2       # the short job, the long
    assert st[other.pid][0] == st[other.pid][1] >= 1
    # A request is 12 + 16 bytes and a result 12 + 8 at least.
    assert st[other.pid][5] >= 28 and st[other.pid][6] >= 20
    total = STATS_TOTAL.search(m.err)
    assert total, m.err
    assert int(total[1]) == 2
    assert int(total[2]) == st[busy][5] + st[other.pid][5]
    assert int(total[3]) == st[busy][6] + st[other.pid][6]
    assert "stats: 2 jobs started, 2 finished, 0 failed, 0 cancelled, 1 " \
           "rerun after a lost slave" in m.err


def test_stopped_slave_is_detected_by_heartbeat_and_its_job_rerun(start, progs):
    m, slaves = _two_hand_slaves(start, progs, "one_long",
                                 "--heartbeat-timeout", "0.6")
    busy = wait_busy([s.pid for s in slaves])
    os.kill(busy, signal.SIGSTOP)
    stopped = next(s for s in slaves if s.pid == busy)
    try:
        assert m.finish() == 0, m.err
        assert m.out == ONE_LONG_OUT
        assert re.search(rf"lost slave \d+ at \S+ \(pid {busy}\): nothing "
                         r"received for \d+\.\d s \(heartbeat timeout\); 1 of "
                         r"its jobs", m.err), m.err
    finally:
        os.kill(busy, signal.SIGCONT)
    # Woken, it finds its master gone (or silent) and exits by itself.
    assert stopped.finish(timeout=10) in (0, 1), stopped.err
    other = next(s for s in slaves if s.pid != busy)
    assert other.finish() == 0, other.err


def _slaves_killed_in_the_long_job(start, progs, n, *master_args):
    """A one_long master with hand-started slaves, `n` of them in turn
    killed in its long job; returns the master."""
    m = start(master_cmd(progs, "one_long", "--listen", "127.0.0.1:0",
                         "--spawn", 0, *master_args), env=TOKEN_ENV)
    addr = listening(m)
    for attempt in range(n):
        s = start(slave_cmd(progs, "one_long", addr, "--threads", 1),
                  env=TOKEN_ENV)
        # The short job first, then the long one: kill it in the long one.
        wait_busy([s.pid])
        s.p.send_signal(signal.SIGKILL)
        s.p.wait(5)
    return m


def test_jobs_fail_once_retries_are_exhausted(start, progs):
    m = _slaves_killed_in_the_long_job(start, progs, 2, "--max-attempts", 2)
    assert m.finish() == 1, m.err
    assert m.out == f"{lcg(1, 1000)}\n"
    assert re.search(r"^one_long\.ms:11:11: runtime error: job 'lcg' failed: "
                     r"its slaves were lost \(2 attempts; the last, at "
                     r"127\.0\.0\.1:\d+: connection closed\)$", m.err, re.M), m.err


def test_local_slaves_that_die_are_replaced(start, progs):
    m = start(master_cmd(progs, "replace", "--spawn", 2, "--verbose"))
    m.wait_err(r"slave \d+ joined", count=2)
    kids = children_of(m.pid)
    assert len(kids) == 2, kids
    for k in kids:
        wait_busy([k], seconds=0.1)
    for k in kids:
        os.kill(k, signal.SIGKILL)
    assert m.finish() == 0, m.err
    total, expected = 0, ""
    for r in range(4):
        total += c_rem(lcg(2 * r, 350_000_000), 1000)
        total += c_rem(lcg(2 * r + 1, 350_000_000), 1000)
        expected += f"{total}\n"
    assert m.out == expected
    for k in kids:
        assert f"local slave pid {k} was killed by signal 9 (Killed); " \
               "starting another" in m.err, m.err
    # Their replacements joined (slaves 3 and 4) and ran the jobs.
    m.wait_err(r"slave [34] joined from \S+ \(pid \d+, local", count=2,
               timeout=0)


# ------------------------------------------------------- joining

QUICK_OUT = "".join(f"{lcg(i, 100_000)}\n" for i in range(5))


def test_slave_started_before_the_master_retries_until_it_is_up(start, progs):
    addr = f"127.0.0.1:{free_port()}"
    s = start(slave_cmd(progs, "quick", addr, "--threads", 2, "--verbose"),
              env=TOKEN_ENV)
    time.sleep(0.6)        # it is retrying by now
    assert s.p.poll() is None, s.err
    m = start(master_cmd(progs, "quick", "--listen", addr, "--spawn", 0),
              env=TOKEN_ENV)
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    assert s.finish() == 0, s.err
    assert "the master ended the run" in s.err


def test_slave_of_another_program_is_refused_on_both_sides(start, progs):
    m = start(master_cmd(progs, "quick", "--listen", "127.0.0.1:0",
                         "--spawn", 0), env=TOKEN_ENV)
    addr = listening(m)
    foreign = start(slave_cmd(progs, "other", addr), env=TOKEN_ENV)
    assert foreign.finish() == 1, foreign.err
    assert re.search(rf"refused by master {re.escape(addr)}: the slave was "
                     r"built from a different program or version than the "
                     r"master", foreign.err), foreign.err
    m.wait_err(rf"refused slave 127\.0\.0\.1:\d+ \(pid {foreign.pid}\): the "
               "slave was built from a different program", timeout=5)
    # Meanwhile the jobs wait; a slave of the right program runs them.
    good = start(slave_cmd(progs, "quick", addr), env=TOKEN_ENV)
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    assert good.finish() == 0, good.err


# --------------------------------------------------- garbage at the master

def _garbage_at_master(addr, stop: threading.Event, seen: list):
    """Throw every kind of bad input at the master until `stop`."""
    rng = random.Random(1234)

    def conn():
        return fp.connect(addr)

    def joined():
        """A fake slave through the handshake (it knows the secret: what
        it sends is sealed, so the master sees the garbage inside)."""
        return fp.FakeSlave(addr)

    def random_bytes(s):
        s.sendall(bytes(rng.randrange(256)
                        for _ in range(rng.randrange(1, 3000))))

    kinds = {
        "random bytes": lambda: random_bytes(conn()),
        "half a header": lambda: conn().sendall(b"\x00\x00\x00\x00\x01"),
        "truncated": lambda: conn().sendall(fp.header(0, 0, 100) + b"\x02" * 10),
        "huge length": lambda: conn().sendall(fp.header(0, 0, 0xFFFFFFFF)),
        "unknown ordinal first": lambda: conn().sendall(fp.frame(77, 1)),
        "wrong fingerprint": lambda: fp.FakeSlave(addr, fingerprint=bytes(32),
                                                  require_welcome=False),
        "wrong version": lambda: conn().sendall(fp.hello(bytes(32), version=9)),
        "zero threads": lambda: fp.FakeSlave(addr, threads=0, secret=fp.TOKEN,
                                             require_welcome=False).sock,
        "wrong secret": lambda: fp.FakeSlave(addr, secret="guess",
                                             require_welcome=False).sock,
        "joined, unknown ordinal": lambda: joined().sendall(fp.frame(99, 1)),
        "joined, result of no job": lambda: joined().sendall(
            fp.frame(1, 999999, bytes(8))),
        "joined, huge length": lambda: joined().sendall(fp.header(1, 1, 0xFFFFFFF0)),
        "joined, random bytes": lambda: random_bytes(joined()),
        "joined, truncated": lambda: joined().sendall(fp.header(1, 1, 8) + b"abc"),
        "joined, unknown control": lambda: joined().sendall(
            fp.control(99)),
        "joined, then silent": lambda: joined(),
    }
    idle = [conn() for _ in range(10)]   # never say a word
    held = []
    # Garbage goes on for the whole run; the fake slaves that join (each
    # takes jobs, which costs them an attempt or, when it falls silent, a
    # heartbeat timeout) come once: a stream of those would starve the run,
    # as any slow slave would.
    rounds = 0
    while not stop.is_set():
        for name, throw in kinds.items():
            if stop.is_set():
                break
            if rounds and name.startswith("joined"):
                continue
            try:
                s = throw()
                if s is not None:
                    held.append(s)
                seen.append(name)
            except (OSError, ConnectionError, AssertionError):
                seen.append(name)      # the master closed it first: fine
        rounds += 1
        stop.wait(0.05)
    for s in idle + held:
        s.close()


def test_garbage_at_the_masters_port_does_not_change_the_run(start, progs):
    # --listen with the tests' secret, so that fake slaves can join too; a fake
    # slave that joins and then falls silent holds a job until the heartbeat
    # timeout, and every fake slave that takes a job costs it an attempt.
    m = start(master_cmd(progs, "many", "--listen", "127.0.0.1:0",
                         "--spawn", 2, "--heartbeat-timeout", 1,
                         "--max-attempts", 10), env=TOKEN_ENV)
    addr = listening(m)
    stop, seen = threading.Event(), []
    t = threading.Thread(target=_garbage_at_master, args=(addr, stop, seen),
                         daemon=True)
    t.start()
    try:
        rc = m.finish(timeout=60)
    finally:
        stop.set()
        t.join(10)
    assert rc == 0, m.err
    total, expected = 0, ""
    for r in range(15):
        for k in range(4):
            total += c_rem(lcg(4 * r + k, 50_000_000), 1000)
        expected += f"{total}\n"
    assert m.out == expected
    assert len(seen) >= 15, seen       # every kind was thrown at least once
    for reason in ("expected a HELLO message", "over the limit",
                   "unknown job ordinal 99", "which it was not running",
                   "different program", "protocol version 9",
                   "offers 0 threads", "unexpected control message 99",
                   "authentication failed"):
        assert reason in m.err, (reason, m.err)


# ---------------------------------------------------- garbage at a slave

def _slave_of(fm, start, progs):
    """Start a slave of `quick` against the fake master: (Proc, socket)."""
    p = start(slave_cmd(progs, "quick", fm.addr, "--threads", 1))
    return p, fm.accept()


def test_a_refusal_that_does_not_prove_the_secret_is_tried_again(start,
                                                                  progs):
    """Anyone who answers at the master's address can send a REFUSE before
    the keys exist: a slave believes only one that proves the secret, and
    treats any other as "not my master" (it connects again)."""
    with fp.FakeMaster(secret=fp.TOKEN) as fm:
        p, c = _slave_of(fm, start, progs)
        fm.fingerprint = fm.challenge(c)
        c.sendall(fp.refuse("go away"))                       # no proof
        c.close()
        c = fm.accept()                                       # it came back
        fm.challenge(c)
        c.sendall(fp.refuse("go away", proof=os.urandom(32)))  # a wrong one
        c.close()
        c = fm.accept()
        fm.challenge(c)
        fm.refuse(c, "no thanks")                             # proven
        assert p.finish(10) == 1
        c.close()
    unproven = re.findall(rf"refused by master {re.escape(fm.addr)}: go away "
                          r"\(the refusal does not prove the shared secret",
                          p.err)
    assert len(unproven) == 2, p.err
    assert f"refused by master {fm.addr}: no thanks\n" in p.err, p.err


def _random(n, seed):
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


# What the fake master does after a full handshake, and what the slave says.
AFTER_HANDSHAKE = {
    "unknown ordinal": (fp.frame(99, 1), 1, r"unknown job ordinal 99"),
    "huge length": (fp.header(1, 1, 0xFFFFFFFF), 1, r"over the limit"),
    "arguments too short": (fp.header(1, 1, 3) + b"abc", 1,
                            r"arguments of job 1 \('lcg'\) do not match"),
    "arguments too long": (fp.frame(1, 1, bytes(17)), 1, r"do not match"),
    "unknown control": (fp.control(99), 1,
                        r"unexpected control message 99"),
    "empty control": (fp.frame(0, 0), 1, r"empty control message"),
    "random bytes": (_random(5000, 7), 1, r"closing the connection to master"),
    # Closed with no GOODBYE: the master vanished, which the slave reports.
    "truncated, then closed": (fp.header(1, 1, 16) + b"abcde", 1,
                               r"closed the connection without ending the run"),
}


def test_garbage_at_a_slave(start, progs):
    with fp.FakeMaster(secret=fp.TOKEN) as fm:
        # Learn the program's fingerprint from a HELLO, then refuse it.
        p, c = _slave_of(fm, start, progs)
        fm.fingerprint = fm.challenge(c)
        fm.refuse(c, "no thanks")               # proven: the slave gives up
        assert p.finish(10) == 1
        assert f"refused by master {fm.addr}: no thanks" in p.err, p.err
        c.close()

        # Bad input before or instead of the CHALLENGE.
        before = {
            "random bytes": (_random(3000, 3), r"is not an M/s master"),
            "huge length": (fp.header(0, 0, 0xFFFFFFFF), r"is not an M/s master"),
            "job instead of challenge": (fp.frame(1, 1), r"is not an M/s master"),
            "malformed challenge": (fp.control(fp.CHALLENGE, struct.pack(
                "<I", fp.VERSION) + b"abcd"), r"malformed CHALLENGE"),
            "truncated challenge": (fp.header(0, 0, fp.CHALLENGE_SIZE) +
                                    bytes([fp.CHALLENGE]) * 20,
                                    r"closed the connection during the handshake"),
        }
        for name, (data, pattern) in before.items():
            p, c = _slave_of(fm, start, progs)
            try:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass                # it already hung up on the first bytes
            assert p.finish(10) == 1, (name, p.err)
            assert re.search(pattern, p.err), (name, p.err)
            c.close()

        # A master of another program: the slave refuses it after WELCOME.
        p, c = _slave_of(fm, start, progs)
        fm.challenge(c, fingerprint=b"\x01" * 32)
        fm.welcome(c)
        assert p.finish(10) == 1
        assert "runs another program or version; refusing it" in p.err, p.err
        c.close()

        for name, (data, status, pattern) in AFTER_HANDSHAKE.items():
            p, c = _slave_of(fm, start, progs)
            link = fm.handshake(c)
            try:
                link.sendall(data)
            except OSError:
                pass                # it already hung up on the first bytes
            if name == "truncated, then closed":
                c.close()
            assert p.finish(10) == status, (name, p.err)
            assert re.search(pattern, p.err), (name, p.err)
            c.close()

        # A master that falls silent after the handshake is given up on.
        p, c = _slave_of(fm, start, progs)
        fm.handshake(c, heartbeat_ms=500)
        assert p.finish(10) == 1
        assert re.search(r"no message from master \S+ for \d+\.\d s; giving "
                         r"up", p.err), p.err
        c.close()

        # And after all that, a slave still runs a job for a fake master
        # that speaks the protocol, then leaves when told.
        p, c = _slave_of(fm, start, progs)
        link = fm.handshake(c)
        link.sendall(fp.frame(1, 7, struct.pack("<qq", 3, 1000)))
        ordinal, jid, body = link.next_message()    # heartbeats skipped
        assert (ordinal, jid) == (1, 7)
        assert struct.unpack("<q", body) == (lcg(3, 1000),)
        link.sendall(fp.control(fp.GOODBYE))
        assert p.finish(10) == 0, p.err
        c.close()


# ------------------------------------------------------ ending the run

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_master_stopped_by_a_signal_stops_every_slave(start, progs, sig):
    m = start(master_cmd(progs, "endless", "--listen", "127.0.0.1:0",
                         "--spawn", 1, "--verbose"), env=TOKEN_ENV)
    addr = listening(m)
    hand = start(slave_cmd(progs, "endless", addr, "--threads", 1,
                           "--verbose"), env=TOKEN_ENV)
    m.wait_err(r"slave \d+ joined", count=2)
    local = children_of(m.pid)
    assert len(local) == 1, local
    wait_busy([hand.pid], seconds=0.1)
    wait_busy(local, seconds=0.1)
    os.kill(m.pid, sig)                  # the master only, as a shell would
    assert m.finish(timeout=10) == 128 + sig, m.err
    assert m.out == ""
    assert f"stopped by signal {int(sig)}" in m.err, m.err
    assert hand.finish(timeout=10) == 0, hand.err
    assert "the master ended the run" in hand.err


def test_runtime_error_in_the_master_stops_every_slave(start, progs):
    addr = f"127.0.0.1:{free_port()}"
    hand = start(slave_cmd(progs, "master_error", addr, "--threads", 1,
                           "--verbose"), env=TOKEN_ENV)
    m = start(master_cmd(progs, "master_error", "--listen", addr,
                         "--spawn", 1), env=TOKEN_ENV)
    assert m.finish(timeout=20) == 1, m.err
    assert m.out == "0\n"
    assert re.search(r"^master_error\.ms:17:15: runtime error: division by "
                     r"zero$", m.err, re.M), m.err
    assert hand.finish(timeout=10) == 0, hand.err
    assert "the master ended the run" in hand.err


def test_job_overflowing_its_stack_fails_alone(start, progs):
    m = start(master_cmd(progs, "overflow", "--spawn", 1, "--stats"))
    assert m.finish() == 1, m.err
    assert m.out == "failed\n42\n100\n"
    assert list(slave_stats(m.err).values())[0][:5] == (3, 2, 1, 0, 0), m.err
    assert re.search(r"^overflow\.ms:18:11: runtime error: job 'deep' failed: "
                     r"overflow\.ms:\d+:\d+: stack overflow$", m.err, re.M), m.err


# ------------------------------------------------------ MS_SLAVE_WRAPPER

def test_local_slaves_run_under_the_wrapper(start, progs, tmp_path, monkeypatch):
    wrapper = tmp_path / "wrap.sh"
    wrapper.write_text('#!/bin/sh\necho "$0 $*" > "$WRAP_LOG.$$"\nshift\nexec "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("WRAP_LOG", str(tmp_path / "argv"))
    monkeypatch.setenv("MS_SLAVE_WRAPPER", f" {wrapper}  --first-word ")
    m = start(master_cmd(progs, "quick", "--spawn", 2))
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    # A run this short may end before the second wrapper has written its
    # log (that slave is then stopped), so one log is enough; every log
    # present must show the wrapper's words before the slave's command.
    logs = sorted(tmp_path.glob("argv.*"))
    assert 1 <= len(logs) <= 2
    for log in logs:
        assert re.fullmatch(rf"{re.escape(str(wrapper))} --first-word "
                            rf"{re.escape(str(progs['quick']))}-slave --fd 3 "
                            r"--threads \d+\n", log.read_text())
    monkeypatch.setenv("MS_SLAVE_WRAPPER", "no-such-wrapper-program --x")
    m = start(master_cmd(progs, "quick"))
    assert m.finish() == 2
    assert "MS_SLAVE_WRAPPER: cannot find the program 'no-such-wrapper-program'" \
        in m.err


def test_master_gives_up_when_local_slaves_cannot_start(start, progs,
                                                         monkeypatch):
    # `false` stands for a slave that exits at once: without --listen no
    # other slave can come, so the master must not wait for ever.
    monkeypatch.setenv("MS_SLAVE_WRAPPER", "false")
    m = start(master_cmd(progs, "quick", "--spawn", 2))
    assert m.finish(timeout=30) == 1, m.err
    assert m.out == ""
    assert m.err.count("exited with status 1 before joining; starting "
                       "another") == 10, m.err
    assert re.search(r"error: the local slaves \(\S+quick-slave\) keep exiting "
                     r"before they join; giving up$", m.err, re.M), m.err


# ------------------------------------------- unset handles in job code

def test_unset_handle_in_job_code_fails_that_job_only(start, progs):
    """get, state and cancel of an unset handle in a job are the runtime
    error the master gives (SPEC 6, 7) at the call: the job fails, its
    slave goes on serving (no slave lost, no job run again)."""
    m = start(master_cmd(progs, "unset_in_job", "--spawn", 1))
    assert m.finish() == 1, m.err
    assert m.out == "42\nfailed\nfailed\nfailed\n2\n"
    assert m.err == ("unset_in_job.ms:41:11: runtime error: job 'use_state' "
                     "failed: unset_in_job.ms:8:9: job handle is not set\n"), m.err


def test_max_retries_is_a_deprecated_alias_counting_retries(start, progs):
    """--max-retries N means N retries, N + 1 attempts, with a warning;
    one attempt is said in the singular."""
    m = _slaves_killed_in_the_long_job(start, progs, 1, "--max-retries", 0)
    assert m.wait_err(r"warning: --max-retries is deprecated")
    assert m.finish() == 1, m.err
    assert re.search(r"lost slave \d+ at \S+ \(pid \d+\): connection closed; "
                     r"1 of its jobs failed after 1 attempt$", m.err, re.M), m.err
    assert re.search(r"job 'lcg' failed: its slaves were lost \(1 attempt; "
                     r"the last, at 127\.0\.0\.1:\d+: connection closed\)$",
                     m.err, re.M), m.err


# ------------------------------------------------- the master's stdout

def _first_line_while_running(cmd, timeout=20.0):
    """Start cmd with its stdout a pipe; return (first line, still running
    when it came) and the process."""
    import subprocess
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    got = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()),
                         daemon=True)
    t.start()
    t.join(timeout)
    return p, (got[0] if got else None), p.poll() is None


def test_stdout_to_a_pipe_is_flushed_when_the_master_waits(progs):
    """SPEC 12.6: what the master printed reaches a pipe when it waits in
    `get`, not at the end of the run."""
    p, line, running = _first_line_while_running(
        master_cmd(progs, "print_then_wait", "--spawn", 1))
    try:
        assert line == b"1\n" and running, (line, running)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_stdout_is_flushed_when_a_signal_ends_the_master(start, progs, sig):
    m = start(master_cmd(progs, "print_then_spin", "--spawn", 1, "--verbose"))
    m.wait_err(r"slave \d+ joined")
    os.kill(m.pid, sig)
    assert m.finish() == 128 + sig, m.err
    assert m.out == "1\n", m.err


# ------------------------------------- secrets for slaves started by hand

QUICK_OUT = "".join(f"{lcg(i, 100000)}\n" for i in range(5))


def _slave_command(m) -> list[str]:
    return shlex.split(m.wait_err(r"start slaves with: (.*)$").group(1))


def _check_private(token: pathlib.Path):
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert token.stat().st_uid == os.getuid()


@pytest.mark.parametrize("where", [["--spawn", 0],
                                   ["--listen", "127.0.0.1:0", "--spawn", 0]],
                         ids=["spawn-0", "listen-loopback"])
def test_master_without_a_secret_prints_a_slave_command_that_works(
        start, progs, where):
    """SPEC 10: no secret given and slaves started by hand: the master
    writes a fresh one to a file only its user reads, prints the slave
    command line that uses it, and removes the file at the end. A slave
    without the secret is refused."""
    m = start(master_cmd(progs, "quick", *where), token=False)
    cmd = _slave_command(m)
    addr = listening(m)
    assert cmd[:3] == [f"{progs['quick']}-slave", "--master", addr], cmd
    assert cmd[3] == "--token-file" and len(cmd) == 5, cmd
    token = pathlib.Path(cmd[4])
    _check_private(token)
    none = start(slave_cmd(progs, "quick", addr), token=False)
    assert none.finish() == 1
    assert "requires a shared secret" in none.err, none.err
    s = start(cmd, token=False)
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    assert s.finish() == 0, s.err
    assert not token.exists() and not token.parent.exists()


def test_secret_file_is_removed_when_a_signal_ends_the_master(start, progs):
    m = start(master_cmd(progs, "quick", "--spawn", 0), token=False)
    token = pathlib.Path(_slave_command(m)[4])
    assert token.exists()
    os.kill(m.pid, signal.SIGTERM)
    assert m.finish() == 128 + signal.SIGTERM
    assert not token.exists() and not token.parent.exists()


def test_ms_token_in_the_environment_needs_no_file(start, progs):
    m = start(master_cmd(progs, "quick", "--listen", "127.0.0.1:0",
                         "--spawn", 0), env=TOKEN_ENV)
    s = start(slave_cmd(progs, "quick", listening(m)), env=TOKEN_ENV)
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    assert s.finish() == 0, s.err
    assert "start slaves with" not in m.err and "token" not in m.err


def test_off_loopback_without_a_secret_refuses_before_binding(start, progs):
    """The port is taken, so binding would fail: the master must say that
    it needs a secret (exit 2), having checked before it bound."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        m = start(master_cmd(progs, "quick", "--listen", f"0.0.0.0:{port}"),
                  token=False)
        assert m.finish() == 2, m.err
    lines = m.err.splitlines()
    assert len(lines) == 1, m.err
    assert re.match(r"quick-master: error: refusing to listen on 0\.0\.0\.0:"
                    rf"{port} without a shared secret: set MS_TOKEN .*--token-"
                    r"file FILE.*--insecure", lines[0]), m.err


def test_renamed_master_hint_leads_to_a_run_that_works(start, progs, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copy(f"{progs['quick']}-master", renamed)
    m = start([renamed], token=False)
    assert m.finish() == 2
    assert "run with --spawn 0" in m.err, m.err
    m = start([renamed, "--spawn", 0], token=False)
    cmd = _slave_command(m)
    assert cmd[0] == "SLAVE", cmd
    m.wait_err(r"SLAVE: the slave program built with this master")
    s = start([f"{progs['quick']}-slave", *cmd[1:]], token=False)
    assert m.finish() == 0, m.err
    assert m.out == QUICK_OUT
    assert s.finish() == 0, s.err


# ---------------------------------------------------------- --version

def test_version_of_master_and_slave(start, progs):
    """Both say the M/s version (the compiler's that built them), the
    protocol version and the program's fingerprint, the same on both."""
    import tomllib
    version = tomllib.loads((HERE.parents[1] / "pyproject.toml").read_text()
                            )["project"]["version"]
    said = {}
    for role in ("master", "slave"):
        p = start([f"{progs['quick']}-{role}", "--version"])
        assert p.finish() == 0, p.err
        assert p.err == ""
        m = re.fullmatch(rf"quick-{role} \(M/s {re.escape(version)}\), "
                         r"protocol version 3, program fingerprint "
                         r"([0-9a-f]{64})\n", p.out)
        assert m, p.out
        said[role] = m.group(1)
    assert said["master"] == said["slave"]
    other = start([f"{progs['other']}-slave", "--version"])
    assert other.finish() == 0
    assert said["master"] not in other.out



# --------------------------------------------------- the end of a run

def test_a_local_slave_whose_master_ended_during_its_handshake_exits_quietly(progs):
    """A local slave still starting when its master ends the run (the run
    needed fewer slaves than it started) finds the CHALLENGE and then a
    closed socket: writing its HELLO fails with EPIPE. That is the end of
    the run, as a close seen while reading is, not an error to print on
    the master's terminal."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(fp.challenge(bytes(32)))
        ours.close()  # before the slave has even started: deterministic
        fd = theirs.fileno()
        # The socket as descriptor 3, where the master puts it.
        slave = subprocess.run(
            ["bash", "-c", f'exec "$0" --fd 3 --insecure 3<&{fd} {fd}<&-',
             f"{progs['quick']}-slave"],
            pass_fds=(fd,), capture_output=True, text=True, timeout=30)
    assert slave.stderr == "", slave.stderr
    assert slave.returncode in (0, 1)
