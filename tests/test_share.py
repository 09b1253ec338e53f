"""Arguments encoded once (issue 13, share.h, docs/protocol.md): a vector or
map passed to many jobs is encoded once in the master, sent once to each
slave (BLOB, then SHARED_JOB messages naming it), kept in the slave's
bounded cache, asked for again (WANT) when the slave let it go; programs
see plain value semantics throughout."""
from __future__ import annotations

import hashlib
import os
import re
import struct
import time

import pytest

import fakepeer as fp
from harness import Proc, build_programs, run_master

BROADCAST = """
job double total(vector<double> xs, int k) {
    double s = 0.0;
    for (int i = 0; i < len(xs); i += 1) s += xs[i];
    return s + double(k);
}
master {
    int n = int(args()[0]);
    int jobs = int(args()[1]);
    vector<double> xs;
    for (int i = 0; i < n; i += 1) xs :: double(i % 1000);
    vector<job<double>> hs;
    for (int k = 0; k < jobs; k += 1) hs :: remote total(xs, k);
    eprint("started");
    double s = 0.0;
    for (int k = 0; k < jobs; k += 1) s += get(hs[k]);
    print(s);
}
"""

# Value semantics with sharing: a value changed after it was sent, the same
# value twice in one call, a map, a vector of strings, values in phases.
SEMANTICS = """
job int sum(vector<int> v) {
    int s = 0;
    for (int i = 0; i < len(v); i += 1) s += v[i];
    return s;
}
job int twice(vector<int> a, vector<int> b) { return len(a) + len(b) + a[0] - b[1]; }
job int weight(map<string, int> m, string k) { return m[k] + len(m); }
job int chars(vector<string> ws) {
    int n = 0;
    for (int i = 0; i < len(ws); i += 1) n += len(ws[i]);
    return n;
}
master {
    vector<int> v;
    for (int i = 0; i < 20000; i += 1) v :: i;
    vector<job<int>> before;
    for (int k = 0; k < 8; k += 1) before :: remote sum(v);
    v[0] = 1000000;                  // a copy: the jobs above keep the old v
    vector<job<int>> after;
    for (int k = 0; k < 8; k += 1) after :: remote sum(v);
    for (int k = 0; k < 8; k += 1) print(str(get(before[k])) + " " + str(get(after[k])));
    print(get(remote twice(v, v)));
    map<string, int> m;
    for (int i = 0; i < 5000; i += 1) m["key" + str(i)] = i;
    vector<job<int>> ws;
    for (int k = 0; k < 4; k += 1) ws :: remote weight(m, "key" + str(k * 1000));
    for (int k = 0; k < 4; k += 1) print(get(ws[k]));
    vector<string> words;
    for (int i = 0; i < 10000; i += 1) words :: "w" + str(i);
    vector<job<int>> cs;
    for (int k = 0; k < 3; k += 1) cs :: remote chars(words);
    for (int k = 0; k < 3; k += 1) print(get(cs[k]));
}
"""

SUM = 19999 * 20000 // 2
SEMANTICS_OUT = ("".join(f"{SUM} {SUM + 1000000}\n" for _ in range(8)) +
                 f"{20000 + 20000 + 1000000 - 1}\n" +
                 "".join(f"{k * 1000 + 5000}\n" for k in range(4)) +
                 "".join(f"{sum(1 + len(str(i)) for i in range(10000))}\n"
                         for _ in range(3)))

# Phases that make a slave with --share-cache 0 let a value go and need it
# again: a, then b (its arrival evicts a), then a again (named, not sent).
PHASES = """
job int first(vector<int> v) { return v[0] + len(v); }
master {
    vector<int> a;
    vector<int> b;
    for (int i = 0; i < 30000; i += 1) { a :: i; b :: 2 * i + 1; }
    for (int round = 0; round < 3; round += 1) {
        vector<int> x = a;
        if (round == 1) x = b;
        vector<job<int>> hs;
        for (int k = 0; k < 4; k += 1) hs :: remote first(x);
        int s = 0;
        for (int k = 0; k < 4; k += 1) s += get(hs[k]);
        print(s);
    }
}
"""


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    return build_programs(tmp_path_factory.mktemp("share"),
                          {"broadcast": BROADCAST, "semantics": SEMANTICS,
                           "phases": PHASES})


def sent_bytes(stats: str) -> int:
    return int(re.search(r"total over \d+ connections?: sent (\d+) bytes",
                         stats).group(1))


def test_a_broadcast_is_sent_once_per_slave(progs):
    """One 8 MB vector to 200 jobs on 2 slaves: each slave receives it
    once (16 MB in all, not 1.6 GB), and the answer is exact."""
    r = run_master(progs["broadcast"], "--spawn", "2", "--stats",
                   "1000000", "200", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "9.99000199e+10\n"
    assert sent_bytes(r.stderr) < 3 * 8_000_000, r.stderr


def test_the_same_vector_sent_again_after_a_change_is_the_new_one(progs):
    r = run_master(progs["semantics"], "--spawn", "2", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == SEMANTICS_OUT


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(bool(os.environ.get("MS_SANITIZE")),
                    reason="ASan's shadow memory and quarantine change resident sizes")
def test_a_broadcast_waiting_for_slaves_holds_the_value_about_twice(start, progs):
    """200 jobs given one 8 MB vector, no slave yet: the master holds the
    vector and its one encoding, not 200 encodings (it held 1.6 GB)."""
    peaks = {}
    for jobs in (1, 200):
        m = start([f"{progs['broadcast']}-master", "--spawn", "0", "--listen",
                   "127.0.0.1:0", "1000000", str(jobs)], env=fp.TOKEN_ENV)
        m.wait_err(r"^started", timeout=60)
        time.sleep(0.2)
        peaks[jobs] = _peak_kib(m.pid)
        m.kill()
    value_kib = 8_000_000 // 1024
    assert peaks[200] - peaks[1] < value_kib // 4, peaks
    assert peaks[200] < 3 * value_kib + 16 * 1024, peaks


def test_a_slave_that_let_a_value_go_asks_for_it_again(start, progs):
    """With --share-cache 0 the slave keeps no idle value: the third phase
    names a value the master sent before, the slave asks for it (WANT),
    and the results are exact."""
    m = start([f"{progs['phases']}-master", "--spawn", "0", "--listen",
               "127.0.0.1:0"], env=fp.TOKEN_ENV)
    addr = m.wait_err(r"listening on (\S+)", timeout=20).group(1)
    s = start([f"{progs['phases']}-slave", "--master", addr, "--threads", "1",
               "--share-cache", "0", "--verbose"], env=fp.TOKEN_ENV)
    assert m.finish(timeout=60) == 0, m.err
    assert m.out == f"{4 * 30000}\n{4 * 30001}\n{4 * 30000}\n", m.err
    s.finish(timeout=20)
    assert re.search(r"needs shared value .* asking the master", s.err), s.err


def _blob(value: bytes, digest: bytes | None = None) -> bytes:
    return bytes([16]) + (digest or hashlib.sha256(value).digest()) + value


def _shared_job(ordinal: int, lit: bytes, refs) -> bytes:
    out = bytes([17]) + struct.pack("<III", ordinal, len(lit), len(refs))
    for at, length, digest in refs:
        out += struct.pack("<II", at, length) + digest
    return out + lit


BAD_SHARED = {
    # name: (payload, what the slave says)
    "forged blob": (lambda v: _blob(v, b"\0" * 32),
                    r"BLOB of \d+ bytes does not match its digest"),
    "short blob": (lambda v: bytes([16]) + b"\1" * 10,
                   r"BLOB of 11 bytes, shorter than its digest"),
    "no values named": (lambda v: _shared_job(1, b"", []),
                        r"SHARED_JOB of 13 bytes naming 0 values"),
    "unknown job": (lambda v: _shared_job(9, b"", [(0, 4, b"\1" * 32)]),
                    r"SHARED_JOB for job ordinal 9"),
    "offset past the literal": (
        lambda v: _shared_job(1, b"", [(5, len(v), b"\1" * 32)]),
        r"value 0 at 5 of 0 literal bytes"),
    "cut off": (lambda v: _shared_job(1, b"", [(0, 4, b"\1" * 32)])[:-5],
                r"SHARED_JOB of \d+ bytes naming 1 values"),
    "a named value that does not decode": (None, None),
}


@pytest.mark.parametrize("what", sorted(BAD_SHARED))
def test_a_slave_refuses_garbage_shared_messages(progs, what):
    """A fake master sends a broken BLOB or SHARED_JOB: the slave says why
    and exits 1 without a crash."""
    make, reason = BAD_SHARED[what]
    value = struct.pack("<Iqq", 2, 1, 2)  # a vector<int> of 2
    slave = f"{progs['phases']}-slave"
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        p = Proc([slave, "--master", fm.addr], env=fp.TOKEN_ENV)
        fm.learn_fingerprint(fm.accept())
        p.finish()
        p = Proc([slave, "--master", fm.addr], env=fp.TOKEN_ENV)
        try:
            link = fm.handshake(fm.accept(), heartbeat_ms=10000)
            if reason is None:
                # A blob whose bytes are no vector<int>: the job naming it
                # fails validation when its arguments are put together.
                bad = b"\xff\xff\xff\xff"
                link.sendall(fp.frame(0, 0, _blob(bad)))
                link.sendall(fp.frame(0, 5, _shared_job(
                    1, b"", [(0, len(bad), hashlib.sha256(bad).digest())])))
                reason = r"arguments of job 5 \('first'\) do not match"
            else:
                link.sendall(fp.frame(0, 5, make(value)))
            assert p.finish(timeout=5) == 1
            assert re.search(reason, p.err), p.err
        finally:
            p.kill()
