"""End-to-end tests of the C runtime (runtime/c: libmsmaster.a, libmsslave.a)
without the compiler: tests/runtime/fixture_prog.c stands in for a compiled
program (FIXTURE_MODE picks what its master block does). Real master and
slave processes talk over loopback; every process has a timeout and is
killed afterwards, and runs check that no process outlives its master.

Also: the signature validator's and the map table's unit tests
(test_ser.c, test_maps.c, test_schedule.c), plainly and under
ASan/UBSan, and fake slaves and masters (tests/fakepeer.py) that send
garbage.
"""
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

import fakepeer as fp
from harness import Proc, children_of

REPO = pathlib.Path(__file__).resolve().parents[2]
RT = REPO / "runtime" / "c"
HERE = pathlib.Path(__file__).resolve().parent
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

LINK = ["-pthread", "-lcrypto", "-lm"]
CFLAGS = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
          "-D_GNU_SOURCE", f"-I{RT}"]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}"
    return r


def _build(out: pathlib.Path, sanitize=False):
    """The runtime into `out` from a clean OUT dir, and the fixture's
    programs: prog-master/prog-slave and other-master/other-slave (another
    job table, so another fingerprint)."""
    make = ["make", "-s", "-C", str(RT), f"OUT={out}"]
    extra = []
    if sanitize:
        make.append("SANITIZE=1")
        extra = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    _run(make)
    assert (out / "libmsmaster.a").exists() and (out / "libmsslave.a").exists()
    for name, defs in (("prog", []), ("other", ["-DOTHER_PROGRAM"])):
        obj = out / f"{name}.o"
        _run([CC, *CFLAGS, *extra, *defs, "-c", str(HERE / "fixture_prog.c"),
              "-o", str(obj)])
        for role in ("master", "slave"):
            _run([CC, *extra, "-o", str(out / f"{name}-{role}"), str(obj),
                  str(out / f"libms{role}.a"), *LINK])
    return out


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    # MS_SANITIZE=1 (`make sanitize`): every test runs on ASan/UBSan builds.
    return _build(tmp_path_factory.mktemp("rt"),
                  sanitize=os.environ.get("MS_SANITIZE") == "1")


# ------------------------------------------------------------- processes

def master(start, bins, *args, mode="basic", n=None, env=None, prog="prog",
           token=True):
    """The fixture's master; with `token`, it has the tests' secret (as
    hand-started slaves do through `slave`)."""
    e = {"FIXTURE_MODE": mode, **(fp.TOKEN_ENV if token else {}), **(env or {})}
    if n is not None:
        e["FIXTURE_N"] = str(n)
    return start([bins / f"{prog}-master", *args], env=e)


def slave(start, bins, addr, *args, prog="prog", env=None, merge=False):
    """A slave started by hand with the tests' secret (MS_TOKEN)."""
    return start([bins / f"{prog}-slave", "--master", addr, *args],
                 env={**fp.TOKEN_ENV, **(env or {})}, merge=merge)


def listening(m):
    return m.wait_err(r"listening on (\S+)").group(1)


BASIC_OUT = """42
finished
1e+21
false
0
219900
x
1
100
0.1
0.30000000000000004
1234567
1e+07
1e+21
-0
inf
-inf
nan
4.94066e-324
1.7976931348623157e+308
123456.7
1.5e-07
"""

# ----------------------------------------------------------------- basics


def test_ser_unit(bins, tmp_path):
    exe = tmp_path / "test_ser"
    # ms-link-flags: the sanitizers' flags too when bins is an ASan build.
    link = (bins / "ms-link-flags").read_text().split()
    _run([CC, *CFLAGS, "-o", str(exe), str(HERE / "test_ser.c"),
          str(bins / "libmsslave.a"), *link])
    assert _run([str(exe)]).stdout == "ser tests passed\n"


# name -> what it tests (each prints "<word> tests passed" last).
UNIT_TESTS = {
    # runtime/c/maps.c's table: SipHash's test vectors, tombstones, growth,
    # order after removals, 1M keys, and keys crafted to collide under an
    # unkeyed hash costing what random keys do.
    "test_maps": ("libmsslave.a", "map tests passed\n"),
    # runtime/c/schedule.c: the ring of jobs in flight keeps their order
    # across answers out of order, growth and compaction; the in-flight
    # limit follows the slave's pace (deep for tiny jobs, the thread count
    # for long ones).
    "test_schedule": ("libmsmaster.a", "schedule tests passed\n"),
}


@pytest.mark.parametrize("name", sorted(UNIT_TESTS))
def test_unit(bins, tmp_path, name):
    lib, last = UNIT_TESTS[name]
    exe = tmp_path / name
    link = (bins / "ms-link-flags").read_text().split()
    _run([CC, *CFLAGS, "-o", str(exe), str(HERE / f"{name}.c"),
          str(bins / lib), *link])
    out = _run([str(exe)]).stdout
    assert out.endswith(last), out


def test_results_and_formats(start, bins):
    m = master(start, bins)
    assert m.finish() == 0, m.err
    assert m.out == BASIC_OUT
    assert m.err == ""


def test_one_local_slave_and_stats(start, bins):
    m = master(start, bins, "--spawn", "1", "--stats")
    assert m.finish() == 0, m.err
    assert m.out == BASIC_OUT
    assert re.search(r"stats: 204 jobs started, 204 finished", m.err), m.err
    assert re.search(r"slave 1 at .*local, \d+ threads?\): ran 204 jobs \(204 "
                     r"finished, 0 failed, 0 cancelled\)", m.err), m.err


def test_big_arguments_among_small_jobs(start, bins):
    """Arguments of megabytes go out from the jobs' own buffers between
    small jobs' messages; one cancelled at once does not disturb the
    others."""
    m = master(start, bins, "--stats", mode="big")
    assert m.finish() == 0, m.err
    lines = m.out.split("\n")
    # On a busy machine the main thread may lose the CPU between starting
    # the doomed job and cancelling it, long enough for the job to finish:
    # then the cancel comes too late and changes nothing.
    assert lines[-1] == "" and lines[-2] in ("cancelled", "finished"), m.out
    for i in range(6):
        n = 300000 + i
        assert float(lines[2 * i]) == float(sum(k % 1000 for k in range(n)))
        assert lines[2 * i + 1] == str(i + 100)
    counts = ("12 finished, 0 failed, 1 cancelled" if lines[-2] == "cancelled"
              else "13 finished, 0 failed, 0 cancelled")
    assert re.search(rf"stats: 13 jobs started, {counts}", m.err), m.err


def test_job_failure_message(start, bins):
    m = master(start, bins, mode="fail")
    assert m.finish() == 1
    assert m.out == "5\nfailed\n"
    assert m.err == ("prog.ms:12:5: runtime error: job 'divide' failed: "
                     "prog.ms:4:12: division by zero\n")


def test_cancel(start, bins):
    t0 = time.monotonic()
    m = master(start, bins, mode="cancel")
    assert m.finish() == 1
    assert m.out == "cancelled\n3\nfinished\n10\n"
    assert m.err == "prog.ms:21:5: runtime error: job 'spin' was cancelled\n"
    # The 5 s job was stopped, not waited for.
    assert time.monotonic() - t0 < 4


def test_unset_handle(start, bins):
    m = master(start, bins, mode="unset")
    assert m.finish() == 1
    assert m.out == "1\n"
    assert m.err == "prog.ms:7:9: runtime error: job handle is not set\n"


def test_stack_overflow_in_job_fails_only_the_job(start, bins):
    m = master(start, bins, mode="deep")
    assert m.finish() == 1
    assert m.out == "running\n1000\n"
    assert m.err == ("prog.ms:9:5: runtime error: job 'deep' failed: "
                     "prog.ms:9:16: stack overflow\n")


def test_crash_in_job_fails_the_job_and_the_slave_is_replaced(start, bins):
    """Unchecked recursion: the slave's SIGSEGV handler reports the job
    failed (so it is not rerun to crash more slaves) and exits."""
    m = master(start, bins, "--spawn", "1", mode="smash")
    assert m.finish() == 1
    assert m.out == "running\n"
    assert "fatal: stack overflow in a job" in m.err
    assert m.err.endswith(
        "prog.ms:71:5: runtime error: job 'smash' failed: prog.ms: stack "
        "overflow (the slave crashed)\n"), m.err


def test_stack_overflow_in_master(start, bins):
    m = master(start, bins, mode="master-deep")
    assert m.finish() == 1
    assert m.out == "1000\n"
    assert m.err == "prog.ms:9:16: runtime error: stack overflow\n"


def test_many_jobs(start, bins):
    m = master(start, bins, mode="many", n=20000)
    assert m.finish(timeout=30) == 0, m.err
    # sum(i + 1 for i < n), then the round trips' own sum
    assert m.out == f"{sum(range(1, 20001))}\n"
    rate = float(m.wait_err(r"RATE (\d+)").group(1))
    assert rate > 2000, m.err  # loose: the machine may be busy


def test_usage_errors(start, bins):
    """Exit status 2 and one line: what is wrong, and where the usage is."""
    cases = [("prog-master", ["--bogus"], "unknown option '--bogus'"),
             ("prog-master", ["--spawn", "x"],
              "--spawn takes an integer from 0 to 1024, not 'x'"),
             ("prog-master", ["--listen", "nocolon"],
              "--listen: bad address 'nocolon' (expected HOST:PORT)"),
             ("prog-master", ["--max-attempts", "0"],
              "--max-attempts takes an integer from 1 to 1000000, not '0'"),
             ("prog-master", ["--version=3"], "--version takes no value"),
             ("prog-slave", [], "--master HOST:PORT is required"),
             ("prog-slave", ["--master"], "--master needs a value"),
             ("prog-slave", ["--master", "h:1", "--threads", "0"],
              "--threads takes an integer from 1 to 1024, not '0'")]
    for prog, args, what in cases:
        p = start([bins / prog, *args])
        assert p.finish() == 2, (args, p.err)
        assert p.err == f"{prog}: error: {what} ({prog} --help prints the " \
                        "usage)\n", p.err
        assert p.out == ""
    for prog in ("prog-master", "prog-slave"):
        p = start([bins / prog, "--help"])
        assert p.finish() == 0
        assert p.out.startswith(f"usage: {prog} ") and p.err == ""


# --------------------------------------------------------- faults: slaves


def test_slave_killed_mid_job_is_rerun(start, bins):
    m = master(start, bins, "--spawn", "2", mode="announce", n=1)
    pid = int(m.wait_err(r"announce running in pid (\d+)").group(1))
    os.kill(pid, signal.SIGKILL)
    assert m.finish() == 0, m.err
    assert m.out == "1\n42\n"
    assert "lost slave" in m.err
    # It ran again, on another slave.
    pids = re.findall(r"announce running in pid (\d+)", m.err)
    assert len(pids) == 2 and pids[0] != pids[1], m.err


def test_jobs_fail_after_max_attempts(start, bins):
    m = master(start, bins, "--spawn", "1", "--max-attempts", "2",
               mode="announce", n=1)
    for _ in range(2):
        pid = int(m.wait_err(r"announce running in pid (\d+)").group(1))
        m.err_lines[:] = [ln for ln in m.err_lines if str(pid) not in ln]
        os.kill(pid, signal.SIGKILL)
    assert m.finish() == 1
    assert re.search(r"prog.ms:40:5: runtime error: job 'announce' failed: "
                     r"its slaves were lost \(2 attempts", m.err), m.err


def test_stopped_slave_times_out(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               "--heartbeat-timeout", "0.6", env=fp.TOKEN_ENV, mode="announce", n=1)
    addr = listening(m)
    s1 = slave(start, bins, addr, "--threads", "1", merge=True)
    pid = int(s1.wait_err(r"announce running in pid (\d+)").group(1))
    assert pid == s1.p.pid
    os.kill(pid, signal.SIGSTOP)
    m.wait_err(r"lost slave .*heartbeat timeout")
    s2 = slave(start, bins, addr)
    assert m.finish() == 0, m.err
    assert m.out == "1\n42\n"
    assert s2.finish() == 0
    os.kill(pid, signal.SIGKILL)


def test_waiting_for_slaves_notice(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               env=fp.TOKEN_ENV, mode="sleep", n=1)
    addr = listening(m)
    m.wait_err(r"waiting for a slave: 1 job is waiting", timeout=6)
    s = slave(start, bins, addr)
    assert m.finish() == 0
    assert m.out == "1\n"
    assert s.finish() == 0  # GOODBYE ends the slave with status 0


def test_slave_started_before_master_retries(start, bins):
    with socket.socket() as probe:  # a free port, released at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = slave(start, bins, f"127.0.0.1:{port}")
    time.sleep(0.4)
    m = master(start, bins, "--listen", f"127.0.0.1:{port}", env=fp.TOKEN_ENV, mode="sleep",
               n=2)
    assert m.finish() == 0, m.err
    assert m.out == "3\n"
    assert s.finish() == 0


def test_sigterm_ends_master_and_local_slaves(start, bins):
    m = master(start, bins, mode="announce", n=1)
    m.wait_err(r"announce running")
    os.kill(m.p.pid, signal.SIGTERM)
    assert m.finish() == 128 + signal.SIGTERM


def test_slave_exits_when_master_is_killed(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               mode="announce", n=1)
    s = slave(start, bins, listening(m), merge=True)
    s.wait_err(r"announce running")
    m.kill()
    # Gone without a GOODBYE: that is a failure, and the slave says so. A
    # killed process's socket closes (FIN), or resets (RST) when the
    # slave's last message was still unread in it: the kernel's choice.
    assert s.finish(timeout=5) == 1
    assert re.search(r"^prog-slave: master 127\.0\.0\.1:\d+ (closed|reset) the "
                     r"connection without ending the run$", s.err, re.M), s.err


def test_slave_says_what_it_waits_for(start, bins):
    """A slave whose master is not (yet) there says so at once, then every
    few seconds, with the reason."""
    with socket.socket() as probe:  # a free port, released at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = start([bins / "prog-slave", "--master", f"127.0.0.1:{port}"])
    first = s.wait_err(rf"^prog-slave: waiting for master 127\.0\.0\.1:{port} "
                       r"\(connection refused\)$", timeout=2)
    assert first
    s.wait_err(r"waiting for master", count=2, timeout=8)
    s.kill()


def test_slave_exits_on_a_host_that_does_not_resolve(start, bins):
    s = start([bins / "prog-slave", "--master", "no-such-host.invalid:7000"])
    assert s.finish(timeout=10) == 2
    assert re.search(r"^prog-slave: error: cannot resolve no-such-host\.invalid: ",
                     s.err, re.M), s.err
    assert len(s.err.splitlines()) == 1, s.err


# ------------------------------------------------------ faults: network


def test_garbage_connections_do_not_change_the_output(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "2",
               mode="sleep", n=15)
    addr = listening(m)
    silent = fp.connect(addr)             # never says anything
    attacks = [
        os.urandom(5000),                 # noise
        fp.header(0, 0, 50)[:7],          # a truncated header
        fp.header(0, 0, 0xFFFFFFF0),      # a huge length
        fp.frame(7, 1, bytes(8)),         # a job result before the handshake
        fp.control(99),                   # an unknown control message
        fp.control(fp.HELLO, struct.pack("<I", fp.VERSION)),  # a short HELLO
    ]
    for data in attacks:
        with fp.connect(addr) as s:
            try:
                s.sendall(data)
            except OSError:
                pass
            if len(data) >= 12:
                assert fp.closed_by_peer(s)
    assert m.finish() == 0, m.err
    assert m.out == "120\n"
    assert m.err.count("closing connection from") >= 4, m.err
    silent.close()


BAD_REPLIES = {
    "short result": lambda o, j: fp.frame(o, j, bytes(7)),
    "long result": lambda o, j: fp.frame(o, j, bytes(9)),
    "unknown ordinal": lambda o, j: fp.frame(99, j, bytes(8)),
    "wrong ordinal": lambda o, j: fp.frame(2, j, bytes(8)),
    "unknown jid": lambda o, j: fp.frame(o, j + 1000, bytes(8)),
    "huge length": lambda o, j: fp.header(o, j, 0xFFFFFFFF),
    "bad control": lambda o, j: fp.control(42, jid=j),
    "empty control": lambda o, j: fp.frame(0, j),
    "failure for unknown jid": lambda o, j: fp.control(fp.FAILURE, b"ab",
                                                       jid=j + 5),
    "cancelled though not cancelled": lambda o, j: fp.control(fp.CANCELLED,
                                                              jid=j),
    "WHERE without a host": lambda o, j: fp.control(fp.WHERE, bytes(8)),
    "WHERE with a jid": lambda o, j: fp.control(fp.WHERE, bytes(8) + b"h",
                                                jid=j),
    "WHERE twice": lambda o, j: (fp.control(fp.WHERE, bytes(8) + b"h") +
                                 fp.control(fp.WHERE, bytes(8) + b"h")),
    "WHERE of 256-byte host": lambda o, j: fp.control(fp.WHERE,
                                                      bytes(8) + b"h" * 256),
}


@pytest.mark.parametrize("what", sorted(BAD_REPLIES))
def test_bad_result_closes_only_that_slave(start, bins, what):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               env=fp.TOKEN_ENV, mode="sleep", n=1)
    addr = listening(m)
    s = fp.FakeSlave(addr, secret=fp.TOKEN)
    ordinal, jid, args = s.next_message()
    assert ordinal == 1 and len(args) == 16
    s.sendall(BAD_REPLIES[what](ordinal, jid))
    assert fp.closed_by_peer(s.sock)
    m.wait_err(r"closing connection from .*")
    real = slave(start, bins, addr)
    assert m.finish() == 0, m.err
    assert m.out == "1\n"
    assert real.finish() == 0


def test_bad_bool_in_result(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               env=fp.TOKEN_ENV, mode="bools")
    addr = listening(m)
    s = fp.FakeSlave(addr, secret=fp.TOKEN)
    ordinal, jid, _ = s.next_message()
    s.send(ordinal, jid, b"\x02")
    assert fp.closed_by_peer(s.sock)
    assert "is not 0 or 1" in m.wait_err(r"closing connection from").string
    slave(start, bins, addr)
    assert m.finish() == 0, m.err
    assert m.out == "true\n"


def test_slave_says_where_it_runs_right_after_welcome(bins):
    """WHERE (docs/protocol.md) is the slave's first message after WELCOME:
    its --launch-tag, its Slurm task + 1 and its host name."""
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        first = Proc([bins / "prog-slave", "--master", fm.addr],
                     env=fp.TOKEN_ENV)
        fm.learn_fingerprint(fm.accept())
        first.finish()
        p = Proc([bins / "prog-slave", "--master", fm.addr, "--launch-tag",
                  "7"], env={**fp.TOKEN_ENV, "SLURM_PROCID": "4"})
        try:
            conn = fm.handshake(fm.accept(), heartbeat_ms=10000)
            host = socket.gethostname().encode()
            assert conn.where == (bytes([fp.WHERE]) + struct.pack("<II", 7, 5)
                                  + host)
            conn.sendall(fp.control(fp.GOODBYE))
            assert p.finish(timeout=5) == 0, p.err
        finally:
            p.kill()


def test_slave_rejects_bad_job_arguments(bins):
    """A fake master sends a job whose arguments do not decode: the slave
    says why and exits 1."""
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        p, conn = _joined_fake_master(bins, fm, max_message=1 << 20)
        try:
            conn.sendall(fp.frame(1, 7, bytes(15)))   # add(int, int): 16
            assert p.finish(timeout=5) == 1
            assert re.search(r"arguments of job 7 \('add'\) do not match",
                             p.err), p.err
        finally:
            p.kill()


def _joined_fake_master(bins, fm, max_message=1 << 22):
    """Start a slave against the fake master `fm` and take it through the
    handshake (its fingerprint learnt from a first attempt).
    Returns (slave Proc, fakepeer.Link: sealed both ways)."""
    p = Proc([bins / "prog-slave", "--master", fm.addr], env=fp.TOKEN_ENV)
    fm.learn_fingerprint(fm.accept())
    p.finish()
    p = Proc([bins / "prog-slave", "--master", fm.addr], env=fp.TOKEN_ENV)
    conn = fm.accept()
    return p, fm.handshake(conn, heartbeat_ms=10000, max_message=max_message)


SUM = 4  # job double sum(vector<double>) in fixture_prog.c


def _send_slowly(link, data, pieces=7):
    data = link.wire(data)
    step = len(data) // pieces + 1
    for i in range(0, len(data), step):
        link.sock.sendall(data[i:i + step])
        time.sleep(0.02)


def test_slave_takes_big_arguments_in_pieces(bins):
    """Job messages over the slave's big-message size arrive in pieces
    (between two small jobs) and are read straight into their own buffer:
    the results are right and in the order sent."""
    n = 300_000
    xs = struct.pack(f"<I{n}d", n, *[float(i % 1000) for i in range(n)])
    small = struct.pack("<Id", 1, 2.5)
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        p, conn = _joined_fake_master(bins, fm)
        try:
            _send_slowly(conn, fp.frame(SUM, 1, small) + fp.frame(SUM, 2, xs) +
                         fp.frame(SUM, 3, small) + fp.frame(SUM, 4, xs))
            got = {}
            while len(got) < 4:
                ordinal, jid, payload = conn.recv_msg()
                if ordinal == SUM:
                    got[jid] = struct.unpack("<d", payload)[0]
            want = float(sum(i % 1000 for i in range(n)))
            assert got == {1: 2.5, 2: want, 3: 2.5, 4: want}
            conn.sendall(fp.control(fp.GOODBYE))
            assert p.finish(timeout=5) == 0, p.err
        finally:
            p.kill()


@pytest.mark.parametrize("what", ["count", "truncated", "over-limit"])
def test_slave_refuses_bad_big_arguments(bins, what):
    """A big job message is checked like any other: a vector count the bytes
    cannot hold is refused, a connection closed in the middle of one ends
    the slave without a crash, and a length over the limit is refused
    before anything is allocated for it."""
    n = 200_000
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        p, conn = _joined_fake_master(bins, fm, max_message=1 << 22)
        try:
            if what == "count":
                body = struct.pack("<I", n + 1) + bytes(8 * n)
                _send_slowly(conn, fp.frame(SUM, 9, body))
                assert p.finish(timeout=5) == 1
                assert re.search(r"arguments of job 9 \('sum'\) do not match"
                                 r".*vector count 200001", p.err), p.err
            elif what == "truncated":
                body = struct.pack("<I", n) + bytes(8 * n)
                # The header sealed as for the whole, then half the bytes.
                whole = conn.tx.seal(SUM, 9, body)
                conn.sock.sendall(whole[:fp.HEADER.size + len(body) // 2])
                time.sleep(0.2)
                conn.close()
                # A master gone without a GOODBYE: status 1, said plainly.
                assert p.finish(timeout=5) == 1, p.err
                assert p.err.endswith("closed the connection without ending "
                                      "the run\n"), p.err
                assert "rror" not in p.err, p.err
            else:
                conn.sendall(fp.header(SUM, 9, (1 << 22) + 1 + fp.TAG) +
                             bytes(1000))
                assert p.finish(timeout=5) == 1
                assert "is over the limit of 4194304 bytes" in p.err, p.err
        finally:
            p.kill()


# ----------------------------------------------- handshake and security


def test_foreign_program_is_refused_on_both_sides(start, bins):
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               env=fp.TOKEN_ENV, mode="sleep", n=3)
    addr = listening(m)
    other = slave(start, bins, addr, prog="other")
    assert other.finish() == 1
    assert re.search(r"refused by master .*: the slave was built from a "
                     r"different program or version", other.err), other.err
    m.wait_err(r"refused slave .*different program or version")
    slave(start, bins, addr)
    assert m.finish() == 0, m.err
    assert m.out == "6\n"


def test_token_is_required_and_checked(start, bins, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               "--token-file", token, mode="sleep", n=3)
    addr = listening(m)
    # A slave with another secret cannot check the master's refusal (it
    # proves the secret): it says so and tries again, as it would with a
    # process that is not its master on that port.
    wrong = start([bins / "prog-slave", "--master", addr],
                  env={"MS_TOKEN": "guess"})
    wrong.wait_err(r"refused by master .*: authentication failed.*\(the "
                   r"refusal does not prove the shared secret")
    wrong.wait_err(r"trying master .* again")
    m.wait_err(r"refused slave .*authentication failed")
    wrong.kill()
    # One without a secret can join no master that asks for one: it stops.
    none = start([bins / "prog-slave", "--master", addr])
    assert none.finish() == 1
    assert "requires a shared secret" in none.err
    # A fake slave without the secret is refused too.
    s = fp.FakeSlave(addr, require_welcome=False)
    assert s.reply[0] == fp.REFUSE and b"authentication failed" in s.reply
    s.close()
    good = start([bins / "prog-slave", "--master", addr],
                 env={"MS_TOKEN": "s3cret"})
    assert m.finish() == 0, m.err
    assert m.out == "6\n"
    assert good.finish() == 0


def tcp_listeners(pid: int) -> list[str]:
    """The TCP ports (hex, as /proc shows them) that process `pid` listens
    on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    ports.append(cols[1].rsplit(":", 1)[1])
    return ports


def test_local_slaves_need_no_tcp_port(start, bins):
    """Without --listen, the local slaves come through socket pairs: the
    master opens no TCP port at all, so no other process can join."""
    m = master(start, bins, "--verbose", mode="sleep", n=8, token=False)
    m.wait_err(r"slave \d+ joined from socketpair")
    assert tcp_listeners(m.pid) == []
    assert m.finish() == 0, m.err
    assert m.out == "36\n"
    assert "listening on" not in m.err


def test_non_loopback_needs_a_secret(start, bins):
    m = master(start, bins, "--listen", "0.0.0.0:0", mode="none", token=False)
    assert m.finish() == 2
    assert "without a shared secret" in m.err
    m = master(start, bins, "--listen", "0.0.0.0:0", "--insecure",
               "--spawn", "1", mode="sleep", n=2, token=False)
    assert m.finish() == 0, m.err
    assert m.out == "3\n"
    assert "warning: listening on 0.0.0.0" in m.err


# ---------------------------------------- attacks on a protected connection

def flip_bit(frame: bytes, at: int = -1) -> bytes:
    """The frame with one bit of its byte `at` (from the end: in the tag
    by default; at=12 the first byte after the header) flipped."""
    b = bytearray(frame)
    b[at] ^= 0x10
    return bytes(b)


def _result_attack(kind):
    """A tamper function for fakepeer.Relay that attacks the first job
    result the slave sends (s2m messages after HELLO) in the way `kind`
    says, and passes everything else on."""
    state = {"held": None, "done": False}

    def is_result(frame):
        return fp.HEADER.unpack_from(frame)[0] != 0

    def tamper(direction, index, frame):
        if direction == "s2m" and index >= 1 and state["held"] is not None:
            held, state["held"] = state["held"], None
            return [frame, held]                  # the two, swapped
        if direction != "s2m" or index == 0 or state["done"]:
            return [frame]
        if kind == "reordered":
            state["held"], state["done"] = frame, True
            return []
        if not is_result(frame):
            return [frame]
        state["done"] = True
        ordinal, jid, length = fp.HEADER.unpack_from(frame)
        if kind == "forged":                      # the result of our choice
            return [frame[:12] + os.urandom(length)]
        if kind == "forged plain":                # unsealed, as in version 1
            return [fp.frame(ordinal, jid, struct.pack("<q", 999))]
        if kind == "flipped":
            return [flip_bit(frame, 12)]
        if kind == "replayed":
            return [frame, frame]
        if kind == "dropped":
            return []
        raise ValueError(kind)
    return tamper


ATTACKS = ["forged", "forged plain", "flipped", "replayed", "reordered",
           "dropped"]


@pytest.mark.parametrize("kind", ATTACKS)
def test_relay_that_tampers_with_results_is_caught(start, bins, kind):
    """A relay between a real slave and the real master (a wrong --master,
    or a port squatted before the master came) passes the handshake on,
    then forges, alters, replays, reorders or drops a message: the master
    cannot open it (or the one after), closes that connection, runs the
    slave's jobs again elsewhere, and the output is exact."""
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               "--heartbeat-timeout", "1.5", mode="sleep", n=6)
    addr = listening(m)
    relay = fp.Relay(addr, _result_attack(kind))
    try:
        relayed = slave(start, bins, relay.addr, "--threads", "1")
        why = m.wait_err(r"closing connection from \S+: (.*)").group(1)
        assert re.search(r"fails authentication \(forged, altered, replayed "
                         r"or out of order\)|shorter than its tag", why), why
        assert relayed.finish() in (0, 1), relayed.err
        direct = slave(start, bins, addr)
        assert m.finish() == 0, m.err
        assert m.out == "21\n"
        assert direct.finish() == 0, direct.err
    finally:
        relay.close()


def test_relay_that_alters_a_request_is_caught_by_the_slave(start, bins):
    """The other way: a job request changed on the way fails to open on the
    slave, which runs nothing, says why and exits; the job runs again."""
    def tamper(direction, index, frame):
        if direction == "m2s" and index >= 2 and fp.HEADER.unpack_from(frame)[0]:
            tamper.done = getattr(tamper, "done", 0) + 1
            if tamper.done == 1:
                return [flip_bit(frame, 13)]
        return [frame]
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               mode="sleep", n=3)
    addr = listening(m)
    relay = fp.Relay(addr, tamper)
    try:
        relayed = slave(start, bins, relay.addr, "--threads", "1")
        assert relayed.finish() == 1, relayed.err
        assert re.search(r"closing the connection to master \S+: message 0 "
                         r"from the master fails authentication", relayed.err)
        m.wait_err(r"lost slave")
        slave(start, bins, addr)
        assert m.finish() == 0, m.err
        assert m.out == "6\n"
    finally:
        relay.close()


def test_faithful_relay_is_harmless(start, bins):
    """A relay that passes every byte on can read nothing (the traffic is
    sealed) and change nothing: the run is as without it."""
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               mode="sleep", n=6)
    relay = fp.Relay(listening(m))
    try:
        s = slave(start, bins, relay.addr)
        assert m.finish() == 0, m.err
        assert m.out == "21\n"
        assert s.finish() == 0, s.err
        results = [f for f in relay.frames["s2m"][1:]
                   if fp.HEADER.unpack_from(f)[0] != 0]
        assert len(results) == 6
        # Sealed: an int result is 8 bytes of ciphertext and a tag, and not
        # the plain value (i + 1 for job i).
        for f in results:
            assert fp.HEADER.unpack_from(f)[2] == 8 + fp.TAG
        plain = {struct.pack("<q", v) for v in range(1, 7)}
        assert not any(f[12:20] in plain for f in results)
    finally:
        relay.close()


def test_recorded_hello_is_refused_on_another_connection(start, bins):
    """A HELLO proves the secret for one CHALLENGE only: recorded and
    played on a new connection (another nonce), it is refused."""
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "0",
               mode="sleep", n=2)
    addr = listening(m)
    with fp.connect(addr) as first, fp.connect(addr) as second:
        _, _, ch = fp.recv_msg(first)
        version, flags, fpr, nonce_m = fp.parse_challenge(ch)
        assert flags == fp.FLAG_AUTH
        nonce_s = os.urandom(32)
        good = fp.hello(fpr, nonce=nonce_s, proof=fp.proof(
            fp.TOKEN, "M/s slave v2", nonce_m, nonce_s, fpr, flags, version,
            1, fp.DEFAULT_PID))
        fp.recv_msg(second)                       # its own CHALLENGE
        second.sendall(good)
        _, _, reply = fp.recv_msg(second)
        assert reply[0] == fp.REFUSE and b"authentication failed" in reply
    m.wait_err(r"refused slave .*authentication failed")
    slave(start, bins, addr)
    assert m.finish() == 0, m.err
    assert m.out == "3\n"


def test_local_process_without_the_secret_is_refused(start, bins):
    """On loopback too: a process that connects to the master's port
    without the secret, or with another, is refused and logged."""
    m = master(start, bins, "--listen", "127.0.0.1:0", "--spawn", "1",
               mode="sleep", n=4)
    addr = listening(m)
    for secret in (None, "a guess"):
        s = fp.FakeSlave(addr, require_welcome=False, secret=secret)
        assert s.reply[0] == fp.REFUSE, s.reply
        assert b"authentication failed" in s.reply
        s.close()
    m.wait_err(r"refused slave 127\.0\.0\.1:\d+ \(pid \d+\): authentication "
               r"failed", count=2)
    assert m.finish() == 0, m.err
    assert m.out == "10\n"


def _no_more_bytes(conn, timeout=3) -> bytes:
    """Whatever comes on `conn` until the peer closes it."""
    conn.settimeout(timeout)
    data = b""
    try:
        while chunk := conn.recv(4096):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


@pytest.mark.parametrize("impostor", ["wrong proof", "no authentication"])
def test_slave_refuses_a_master_without_the_secret(bins, impostor):
    """A fake master without the secret, whether it claims authentication
    (its WELCOME proof is made up) or offers none: the slave refuses it
    before any job, says so, and tries again later (the real master may
    come)."""
    with fp.FakeMaster(timeout=5, claim_auth=impostor == "wrong proof") as fm:
        p = Proc([bins / "prog-slave", "--master", fm.addr], env=fp.TOKEN_ENV)
        try:
            c = fm.accept()
            fm.challenge(c) if impostor == "wrong proof" else \
                c.sendall(fp.challenge(fm.fingerprint, flags=0))
            if impostor == "wrong proof":
                fm.welcome(c)
                c.sendall(fp.frame(1, 7, struct.pack("<qq", 2, 3)))
            assert _no_more_bytes(c) == b""       # no HELLO, no result
            p.wait_err(r"refusing master 127\.0\.0\.1:\d+: " +
                       (r"authentication failed: it does not prove the shared "
                        r"secret" if impostor == "wrong proof" else
                        r"it does not prove the shared secret \(it has none"))
            p.wait_err(r"trying master 127\.0\.0\.1:\d+ again in 0\.5 s")
            fm.accept().close()                   # it came back
            assert p.p.poll() is None, p.err
        finally:
            p.kill()


def test_insecure_slave_accepts_an_insecure_master_with_a_warning(bins):
    with fp.FakeMaster(timeout=5) as fm:
        p = Proc([bins / "prog-slave", "--master", fm.addr, "--insecure"])
        try:
            fm.learn_fingerprint(fm.accept())
            assert p.finish() == 1                # another program's master
            p = Proc([bins / "prog-slave", "--master", fm.addr, "--insecure"])
            link = fm.handshake(fm.accept())
            link.sendall(fp.frame(1, 7, struct.pack("<qq", 2, 3)))
            assert link.next_message() == (1, 7, struct.pack("<q", 5))
            link.sendall(fp.control(fp.GOODBYE))
            assert p.finish() == 0, p.err
            assert "warning: master" in p.err and "--insecure" in p.err
        finally:
            p.kill()


# ------------------------------------------------------------ sanitizers


def test_under_sanitizers(start, tmp_path):
    """The basic and failing runs again, built with ASan and UBSan."""
    b = _build(tmp_path / "asan", sanitize=True)
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    m = master(start, b, env=env)
    assert m.finish(timeout=60) == 0, m.err
    assert m.out == BASIC_OUT
    assert m.err == ""
    m = master(start, b, mode="fail", env=env)
    assert m.finish(timeout=60) == 1
    assert "division by zero" in m.err and "Sanitizer" not in m.err


# ------------------------------------------------ local slaves' threads

def _local_slave_threads(m, count, timeout=15.0):
    """The --threads of each of the master's `count` local slaves (read
    from their command lines while they run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for pid in children_of(m.pid):
            try:
                argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            words = argv.decode().split("\0")
            found.append(int(words[words.index("--threads") + 1])
                         if "--threads" in words else None)
        # A child between fork and exec still shows the master's words.
        if len(found) == count and None not in found:
            return sorted(found)
        time.sleep(0.05)
    raise AssertionError(f"not {count} local slaves: {found}")


@pytest.mark.parametrize("spawn", [None, 1, 3])
def test_local_slaves_share_the_cpus(start, bins, spawn):
    """SPEC 8: as many local slaves as CPUs (at least 2) by default, and
    their threads together are the CPU count (each at least 1), so the
    default run does not oversubscribe the machine."""
    cpus = os.cpu_count()
    args = [] if spawn is None else ["--spawn", str(spawn)]
    n = max(2, cpus) if spawn is None else spawn
    m = master(start, bins, *args, mode="sleep", n=30)
    threads = _local_slave_threads(m, n)
    want = sorted(max(1, cpus // n + (i < cpus % n)) for i in range(n))
    assert threads == want, (threads, want)
    assert sum(threads) == max(cpus, n)
    assert m.finish() == 0, m.err
