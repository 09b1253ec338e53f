"""Resource and hostile-peer scenarios (SPEC 10, docs/protocol.md
"Distrust"): idle and slow connections before the handshake, a joined peer
that takes jobs and hangs up, zero-size elements by the millions, partial
messages too big to hold them all, a slave out of memory, local slaves
killed again and again, and the smaller things (output before a crash,
control bytes in peer text, --stats of many slaves).

Every test runs real compiled programs (tests/faults/hostile/*.ms) and, for
the hostile side, tests/fakepeer.py; each checks the master's output
exactly."""
from __future__ import annotations

import os
import pathlib
import random
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import fakepeer as fp
from harness import build_program_dir, clean_env, cpu_seconds, kill_group
from test_faults import (c_rem, children_of, lcg, listening, master_cmd,
                         slave_cmd)

HERE = pathlib.Path(__file__).resolve().parent / "hostile"


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    """Every tests/faults/hostile/*.ms compiled; name -> path prefix."""
    return build_program_dir(HERE, tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def start(start):
    """The conftest fixture, every process given the tests' secret: since
    protocol 2 no connection, loopback included, goes unauthenticated."""
    def run(cmd, env=None, **kw):
        return start(cmd, env={**fp.TOKEN_ENV, **(env or {})}, **kw)
    return run


# ------------------------------------------------ zero-size elements

def test_millions_of_empty_structs_go_to_a_job_and_back(start, progs):
    m = start(master_cmd(progs, "empties", "--spawn", 1))
    assert m.finish(timeout=120) == 0, m.err
    n = (1 << 24) + 1
    assert m.out == f"{n}\n{n}\n2\n{n}\n7002\n", m.err


# ------------------------------------------------ local slaves in churn

def _churn_expected() -> str:
    return f"{sum(c_rem(lcg(s, 4_000_000), 1000) for s in range(1440))}\n"


def test_local_slaves_killed_every_half_second_do_not_slow_the_run(start,
                                                                   progs):
    t0 = time.monotonic()
    m = start(master_cmd(progs, "churn", "--spawn", 2))
    assert m.finish(timeout=120) == 0, m.err
    calm = time.monotonic() - t0
    assert m.out == _churn_expected()

    t0 = time.monotonic()
    m = start(master_cmd(progs, "churn", "--spawn", 2, "--verbose"))
    kills, rng = 0, random.Random(9)
    while m.p.poll() is None:
        time.sleep(0.5)
        kids = children_of(m.pid)
        if kids:
            try:
                os.kill(rng.choice(kids), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    assert m.finish(timeout=5) == 0, m.err
    churned = time.monotonic() - t0
    assert m.out == _churn_expected()
    assert kills >= 3, (kills, m.err)
    # A slave that joined did not "die at once": it is replaced quickly.
    # Losing a slave costs its jobs in flight and the time to start another
    # (a few tens of ms), not a restart delay that grows to 5 s.
    assert churned < 3 * calm + 2, (calm, churned, kills, m.err)


# ------------------------------------------------ smaller things

def _fake_master_slave(fm, progs, name, *args, **popen):
    """A slave of `name` joined to the fake master (which learns the
    program's fingerprint from a first slave at another fake master; that
    one would connect again): (Popen, socket). The fake masters do not
    authenticate, so the slave runs with --insecure and no secret; `args`
    are more of its options."""
    with fp.FakeMaster() as learner:
        first = subprocess.Popen(slave_cmd(progs, name, learner.addr, "--insecure"),
                                 env=clean_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            learner.learn_fingerprint(learner.accept())
        finally:
            kill_group(first)
            first.wait(10)
    fm.fingerprint = learner.fingerprint
    p = subprocess.Popen(slave_cmd(progs, name, fm.addr, "--threads", 1,
                                   "--insecure", *args),
                         env=clean_env(), start_new_session=True, **popen)
    c = fm.accept()
    # The fake master sends no heartbeats: a long timeout keeps a slave
    # that is slow (ASan, a loaded machine) from giving up on it mid-test.
    fm.handshake(c, heartbeat_ms=20000)
    return p, c


def test_what_a_job_printed_is_out_before_its_result(progs):
    """Forwarded (the default), the job's line is an OUTPUT message on the
    connection, before its result."""
    with fp.FakeMaster() as fm:
        p, c = _fake_master_slave(fm, progs, "chatty",
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            c.sendall(fp.frame(1, 5, struct.pack("<q", 14)))
            c.settimeout(10)
            assert fp.next_message(c) == \
                (0, 5, bytes([fp.OUTPUT, fp.STREAM_STDOUT]) + b"42")
            assert fp.next_message(c) == (1, 5, struct.pack("<q", 15))
        finally:
            kill_group(p)
            c.close()


def test_what_a_no_forward_job_printed_is_out_before_its_result(progs):
    """With --no-forward the slave's stdout is a pipe kept full: the job's
    line cannot be written. If its result still arrives, a kill -9 now
    loses the line."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    filler = 0
    try:
        while True:
            filler += os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    with fp.FakeMaster() as fm:
        p, c = _fake_master_slave(fm, progs, "chatty", "--no-forward",
                                  stdout=w, stderr=subprocess.DEVNULL)
        os.close(w)
        got = bytearray()
        drain = threading.Thread(target=lambda: None)
        try:
            c.sendall(fp.frame(1, 5, struct.pack("<q", 14)))
            c.settimeout(1.5)
            try:
                answer = fp.next_message(c)
            except socket.timeout:
                # Right: the line must be written first. Let it through.
                def pump():
                    while chunk := os.read(r, 65536):
                        got.extend(chunk)
                drain = threading.Thread(target=pump, daemon=True)
                drain.start()
                c.settimeout(10)
                answer = fp.next_message(c)
            assert answer == (1, 5, struct.pack("<q", 15)), answer
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            drain.join(10)
            os.set_blocking(r, False)
            try:
                while chunk := os.read(r, 65536):
                    got.extend(chunk)
            except BlockingIOError:
                pass
        finally:
            kill_group(p)
            c.close()
            os.close(r)
    assert len(got) == filler + 3 and got.endswith(b"x42\n"), got[-20:]


C1_TEXT = (b"chatty.ms:3:5: boom \xc2\x9b2J \x9b31m \x1b[2J \x85 "
           b"caf\xc3\xa9 \xe2\x82\xac \xc3")


def _no_control(text: str) -> None:
    bad = [ch for ch in text if ch not in "\n" and (ord(ch) < 0x20 or
           0x7f <= ord(ch) <= 0x9f or ch == "\ufffd")]
    assert not bad, (bad, text)


def test_control_bytes_in_a_failure_do_not_reach_the_terminal(start, progs):
    m = start(master_cmd(progs, "chatty", "--listen", "127.0.0.1:0",
                         "--spawn", 0))
    addr = listening(m)
    s = fp.FakeSlave(addr)
    try:
        ordinal, jid, _ = s.next_message()
        s.send(0, jid, bytes([fp.FAILURE]) + C1_TEXT)
        assert m.finish() == 1, m.err
    finally:
        s.close()
    assert "job 'chatty' failed: chatty.ms:3:5: boom ?2J ?31m ?[2J ? café € ?" \
        in m.err, m.err
    _no_control(m.err)


def test_control_bytes_in_a_refusal_do_not_reach_the_terminal(progs):
    with fp.FakeMaster() as fm:
        p = subprocess.Popen(slave_cmd(progs, "chatty", fm.addr, "--insecure"),
                             env=clean_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            c = fm.accept()
            fm.challenge(c)
            c.sendall(fp.control(fp.REFUSE, C1_TEXT))
            _, err = p.communicate(timeout=10)
        finally:
            kill_group(p)
        c.close()
    err = err.decode(errors="replace")
    assert p.returncode == 1, err
    assert "boom ?2J ?31m ?[2J ? café € ?" in err, err
    _no_control(err)


def _answer_ints(s: fp.FakeSlave, job=lambda n: n + 1,
                 answered: list | None = None) -> None:
    """Answer every job of one int argument with job(argument), as the real
    job would (`chatty`'s by default), until the end; `answered`, if given,
    gets each argument."""
    try:
        while True:
            ordinal, jid, payload = s.next_message()
            if ordinal == 0:
                return                      # GOODBYE
            (n,) = struct.unpack("<q", payload)
            s.answer_int(ordinal, jid, job(n))
            if answered is not None:
                answered.append(n)
    except (ConnectionError, OSError):
        return


def test_stats_keep_lines_for_the_most_recent_slaves_only(start, progs):
    m = start(master_cmd(progs, "chatty", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--stats"))
    addr = listening(m)
    fakes = [fp.FakeSlave(addr) for _ in range(40)]
    threads = [threading.Thread(target=_answer_ints, args=(f,), daemon=True)
               for f in fakes]
    for t in threads:
        t.start()
    try:
        assert m.finish() == 0, m.err
    finally:
        for f in fakes:
            f.close()
    assert m.out == f"{sum(range(1, 61))}\n"
    lines = re.findall(r"stats: slave \d+ at .* ran (\d+) jobs? ", m.err)
    assert len(lines) == 32, m.err
    more = re.search(r"stats: \.\.\. and 8 more slaves before these: ran "
                     r"(\d+) jobs? \(\d+ finished, 0 failed, 0 cancelled\), 0 "
                     r"retried elsewhere after they were lost; sent \d+ bytes, "
                     r"received \d+ bytes$", m.err, re.M)
    assert more, m.err
    assert int(more[1]) + sum(map(int, lines)) == 60, m.err


# ------------------------------------------------ a joined peer

def _take_and_hang_up(addr: str, seconds: float) -> int:
    """A fake slave that claims 1024 threads, takes whatever jobs it is
    sent for `seconds`, and hangs up. Returns how many it took."""
    s = fp.FakeSlave(addr, threads=1024)
    taken = 0
    s.sock.settimeout(0.05)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                ordinal, _, _ = s.next_message()
            except socket.timeout:
                continue
            except ConnectionError:
                break   # the master closed it (the run may have ended)
            taken += ordinal > 0
    finally:
        s.close()
    return taken


def test_a_peer_that_takes_jobs_and_hangs_up_costs_only_its_few(start, progs):
    m = start(master_cmd(progs, "fanout", "--listen", "127.0.0.1:0",
                         "--spawn", 1, "--verbose"))
    addr = listening(m)
    m.wait_err(r"slave \d+ joined .*local")
    taken = [_take_and_hang_up(addr, 0.4) for _ in range(3)]
    assert m.finish(timeout=60) == 0, m.err
    assert m.out == f"{sum(c_rem(lcg(k, 30_000_000), 1000) for k in range(48))}\n"
    # Slow start: a new connection is given 2 jobs until it answers.
    assert all(t <= 2 for t in taken), taken
    assert "its slaves were lost" not in m.err, m.err


# ------------------------------------------------ before the handshake

def _idle_flood(addr: str, n: int, stop: threading.Event, stats: dict) -> None:
    """Hold `n` idle connections to addr open, opening a new one for each
    that the master closes; one more sends a byte a second (slowloris)."""
    import selectors
    host, port = addr.rsplit(":", 1)
    sel = selectors.DefaultSelector()

    def open_one(slow=False):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, int(port)))
        sel.register(s, selectors.EVENT_READ, slow)
        stats["opened"] += 1
        return s

    for _ in range(n):
        open_one()
    slow = open_one(slow=True)
    t_byte = time.monotonic()
    while not stop.is_set():
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                if s.recv(65536):
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            sel.unregister(s)
            s.close()
            if key.data:
                stats["slow reopened"] += 1
                slow = open_one(slow=True)
            else:
                open_one()
        if time.monotonic() - t_byte >= 1:
            t_byte = time.monotonic()
            try:
                slow.send(b"\0")
            except OSError:
                pass                        # the select above sees it closed
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def test_idle_connections_cannot_keep_a_slave_out(start, progs):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    m = start(master_cmd(progs, "chatty", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--verbose"))
    addr = listening(m)
    stop, stats = threading.Event(), {"opened": 0, "slow reopened": 0}
    flood = threading.Thread(target=_idle_flood, args=(addr, 2000, stop, stats),
                             daemon=True)
    flood.start()
    try:
        time.sleep(1.5)                # the flood fills every slot
        s = start(slave_cmd(progs, "chatty", addr, "--threads", 1))
        m.wait_err(r"slave \d+ joined from .*pid %d" % s.pid, timeout=30)
        assert m.finish(timeout=60) == 0, m.err
    finally:
        stop.set()
        flood.join(10)
    assert m.out == f"{sum(range(1, 61))}\n"
    assert s.finish() == 0, s.err
    assert stats["opened"] > 2000, stats          # the master closed some
    if os.environ.get("MS_SANITIZE") != "1":
        # and timed the slow one out (on the ASan build the master may
        # not even have accepted it before so short a run ends)
        assert stats["slow reopened"] >= 1, stats


# ------------------------------------------------ a slave out of memory

def _vm_size(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmSize:\s+(\d+) kB", status, re.M)[1]) * 1024


@pytest.mark.skipif(os.environ.get("MS_SANITIZE") == "1",
                    reason="an address-space limit (prlimit --as) cannot hold "
                           "AddressSanitizer's shadow memory")
def test_a_result_too_big_to_encode_fails_its_job_alone(start, progs):
    # The address space of a joined slave with one thread, idle.
    with fp.FakeMaster() as fm:
        p, c = _fake_master_slave(fm, progs, "bigresult",
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        base = _vm_size(p.pid)
        kill_group(p)
        c.close()
    # Room to build the 128 MiB vector (growing it needs 192 MiB at most)
    # but not to encode it as well (256 MiB).
    limit = base + (224 << 20)
    m = start(master_cmd(progs, "bigresult", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--verbose"))
    addr = listening(m)
    s = start(["prlimit", f"--as={limit}", "--",
               *slave_cmd(progs, "bigresult", addr, "--threads", 1)])
    assert m.finish(timeout=60) == 1, m.err
    assert m.out == "2\n3\n", m.err
    # The encoder knows no position in the source: none is made up.
    assert re.search(r"^bigresult\.ms:18:21: runtime error: job 'big' failed: "
                     r"bigresult\.ms: out of memory: a buffer of \d+ bytes "
                     r"\(for the job's result\)$", m.err, re.M), m.err
    assert ":0:0" not in m.err, m.err
    assert "lost slave" not in m.err, m.err
    assert s.finish() == 0, s.err      # it went on, and left at the end


@pytest.mark.skipif(os.environ.get("MS_SANITIZE") == "1",
                    reason="an address-space limit (prlimit --as) cannot hold "
                           "AddressSanitizer's shadow memory")
def test_out_of_memory_without_a_known_position_shows_none(start, progs):
    """Out of memory in a runtime call that is given no position (here the
    concatenation `v + v`) is reported without one, not at a made-up 0:0."""
    m = start(master_cmd(progs, "masteroom", "--spawn", 0))
    m.wait_err(r"start slaves with|listening on", timeout=10)
    base = _vm_size(m.pid)
    m.kill()
    m = start(["prlimit", f"--as={base + (256 << 20)}", "--",
               *master_cmd(progs, "masteroom", "--spawn", 0)])
    assert m.finish(timeout=60) == 1, m.err
    assert re.search(r"^masteroom\.ms: runtime error: out of memory$", m.err,
                     re.M), m.err
    assert ":0:0" not in m.err, m.err


# ------------------------------------------------ partial input in all

def _vm_hwm(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1]) * 1024


def _vm_rss(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)[1]) * 1024


MiB = 1 << 20
BUDGET_OUT = "".join(f"{i * i}\n" for i in range(8))


def _announce_huge_result(s: fp.FakeSlave, size: int, done: list,
                          pace: float = 0.0) -> None:
    """Take one job and answer it with a message announcing a result of
    `size` bytes, then send them (zeros: it fails to open once whole), in
    1 MiB pieces `pace` seconds apart. Ends when the master closes it."""
    try:
        ordinal, jid, _ = s.next_message()
        s.sock.settimeout(120)
        s.sock.sendall(fp.header(ordinal, jid, size + fp.TAG))
        piece = bytes(MiB)
        left = size + fp.TAG
        while left > 0:
            n = min(left, len(piece))
            s.sock.sendall(piece[:n])
            left -= n
            if pace:
                time.sleep(pace)
        done.append(ordinal)
    except OSError:
        done.append(None)


def test_four_connections_of_300_mb_each_stay_within_the_budget(start, progs):
    """SPEC 10: partial input is bounded across connections, not only per
    connection. Four authenticated peers each announce a 300 MB result and
    send it; the master holds at most its budget (here 320 MiB, the
    --max-message) of them at once: the others wait, unread, until it frees.
    Each fails to open once whole, so its job runs again on a real slave."""
    limit = 320 * MiB
    m = start(master_cmd(progs, "budget", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--max-message", limit, "--verbose"))
    addr = listening(m)
    time.sleep(0.2)
    base = _vm_rss(m.pid)
    fakes = [fp.FakeSlave(addr) for _ in range(4)]
    done: list = []
    threads = [threading.Thread(target=_announce_huge_result,
                                args=(f, 300 * MiB, done), daemon=True)
               for f in fakes]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(120)
        assert len(done) == 4, done
        m.wait_err(r"fails authentication", count=4, timeout=30)
        peak = _vm_hwm(m.pid) - base
        s = start(slave_cmd(progs, "budget", addr, "--threads", 2))
        assert m.finish(timeout=60) == 0, m.err
    finally:
        for f in fakes:
            f.close()
    assert m.out == BUDGET_OUT, m.err
    assert s.finish() == 0, s.err
    print(f"peak RSS growth of the master: {peak // MiB} MiB")
    # Without a budget all four are held at once: 1.2 GB and more.
    assert peak < limit + 96 * MiB, (peak // MiB, m.err)


def test_a_huge_result_sent_slowly_does_not_hold_up_the_others(start, progs):
    """A peer announcing a 900 MB result and sending it a MiB at a time
    holds most of the budget for as long as it likes; another slave's
    results still come through meanwhile (it is sent every other job),
    and when the slow one gives up its job runs there too."""
    m = start(master_cmd(progs, "budget", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--verbose"))
    addr = listening(m)
    slow = fp.FakeSlave(addr)
    done: list = []
    t = threading.Thread(target=_announce_huge_result,
                         args=(slow, 900 * MiB, done, 0.02), daemon=True)
    t.start()
    fast, answered = None, []
    try:
        time.sleep(0.5)                 # its first piece is in
        fast = fp.FakeSlave(addr, threads=2)
        a = threading.Thread(target=_answer_ints,
                             args=(fast, lambda x: x * x, answered),
                             daemon=True)
        a.start()
        deadline = time.monotonic() + 20
        while len(answered) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not done, "the slow peer was not slow"
        assert len(answered) == 7, (answered, m.err)
        slow.close()            # it gives up: its job runs on the other
        assert m.finish(timeout=60) == 0, m.err
        a.join(10)
    finally:
        slow.close()
        if fast:
            fast.close()
        t.join(10)
    assert m.out == BUDGET_OUT, m.err
    assert sorted(answered) == list(range(8)), answered


def test_big_results_of_honest_slaves_all_arrive_through_a_small_budget(
        start, progs):
    """Four slaves send results of 144 MB each at once; the budget (256
    MiB) holds one at a time, so the others wait, some while `get` reads
    their connection itself: none is left waiting for good."""
    m = start(master_cmd(progs, "bigfour", "--spawn", 4, "--verbose",
                         "--max-message", 150 * MiB))
    assert m.finish(timeout=120) == 0, m.err
    assert m.out == "".join(f"{18_000_000 + k}\n" for k in range(1, 5)), m.err
    assert "waits to read its message" in m.err, m.err
    assert "goes on with its message" in m.err, m.err


def test_a_connection_waiting_for_the_budget_is_neither_timed_out_nor_spun_on(
        start, progs):
    """While one peer sends a big result slowly, another's waits for the
    budget longer than the heartbeat timeout: it is not read, so its
    silence is the master's, not a lost slave; and the master does not
    spin on its timer meanwhile."""
    m = start(master_cmd(progs, "budget", "--listen", "127.0.0.1:0",
                         "--spawn", 0, "--verbose", "--heartbeat-timeout", 1,
                         "--max-message", 200 * MiB))
    addr = listening(m)
    a, b = fp.FakeSlave(addr), fp.FakeSlave(addr)
    done: list = []
    ta = threading.Thread(target=_announce_huge_result,
                          args=(a, 200 * MiB, done, 0.02), daemon=True)
    ta.start()
    time.sleep(0.3)
    tb = threading.Thread(target=_announce_huge_result,
                          args=(b, 140 * MiB, done), daemon=True)
    tb.start()
    try:
        m.wait_err(r"waits to read its message of \d+ bytes", timeout=10)
        time.sleep(1.2)                 # past the heartbeat timeout
        cpu0 = cpu_seconds(m.pid)
        time.sleep(1.5)
        spent = cpu_seconds(m.pid) - cpu0
        ta.join(60)
        tb.join(60)
        m.wait_err(r"goes on with its message", timeout=10)
        m.wait_err(r"fails authentication", count=2, timeout=30)
        s = start(slave_cmd(progs, "budget", addr, "--threads", 2))
        assert m.finish(timeout=60) == 0, m.err
    finally:
        a.close()
        b.close()
    assert m.out == BUDGET_OUT, m.err
    assert s.finish() == 0, s.err
    assert "heartbeat timeout" not in m.err, m.err
    # Reading the slow one costs a little; spinning on the paused one's
    # expired heartbeat deadline cost 0.36 s of these 1.5 s (0.06 s now).
    if os.environ.get("MS_SANITIZE") != "1":
        assert spent < 0.2, (spent, m.err)
