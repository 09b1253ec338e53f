"""SPEC 13's maps beyond the golden programs of tests/golden/maps/ (which
tests/test_golden_interp.py also runs through both interpreters):
garbage map payloads (a huge count, a repeated key, an entry cut off) sent
by a fake slave (tests/fakepeer.py) to a master, and by a fake master to a
slave, are refused with a logged reason."""
from __future__ import annotations

import re
import struct

import pytest

import fakepeer as fp
from harness import REPO, Proc, build_program, run_master, write_program





# ------------------------------------------------------------ garbage maps

GARBAGE_PROGRAM = """
job int size(map<string, int> m) {
    return len(m);
}

job map<int, int> make(int n) {
    map<int, int> m;
    for (int i = 0; i < n; i += 1) m[i] = i * i;
    return m;
}

master {
    map<string, int> m;
    m["a"] = 1;
    print(get(remote size(m)));
    map<int, int> made = get(remote make(3));
    print(made[2]);
}
"""

SIZE, MAKE = 1, 2    # the jobs' ordinals


def _string_map(entries, count=None) -> bytes:
    """A map<string, int> encoding: u32 count, then each key and value."""
    out = struct.pack("<I", len(entries) if count is None else count)
    for k, v in entries:
        out += struct.pack("<I", len(k)) + k + struct.pack("<q", v)
    return out


def _int_map(entries, count=None) -> bytes:
    out = struct.pack("<I", len(entries) if count is None else count)
    for k, v in entries:
        out += struct.pack("<qq", k, v)
    return out


GARBAGE_ARGS = {
    "huge count": (_string_map([(b"a", 1)], count=0xFFFFFFFF),
                   r"map count 4294967295 .* bytes left"),
    "repeated key": (_string_map([(b"a", 1), (b"b", 2), (b"a", 3)]),
                     r"map key at byte 30 repeats the key at byte 4"),
    "cut-off entry": (_string_map([(b"a", 1), (b"bc", 2)])[:-3],
                      r"payload ends inside a value"),
}

GARBAGE_RESULTS = {
    "huge count": (_int_map([(1, 1)], count=1 << 30),
                   r"map count 1073741824 .* bytes left"),
    "repeated key": (_int_map([(0, 0), (1, 1), (0, 4)]),
                     r"map key at byte 36 repeats the key at byte 4"),
    # Two 16-byte entries cannot fit in 31 bytes: refused by the count.
    "cut-off entry": (_int_map([(0, 0), (1, 1)])[:-1],
                      r"map count 2 at byte 0 is more than the 31 bytes left"),
}


@pytest.fixture(scope="module")
def garbage_prog(tmp_path_factory, runtime_built):
    out = tmp_path_factory.mktemp("maps")
    return build_program(write_program(out, "garbage", GARBAGE_PROGRAM),
                         out / "garbage")


def _check_good_run(m):
    assert m.finish(timeout=60) == 0, m.err
    assert m.out == "1\n4\n"


@pytest.mark.parametrize("what", sorted(GARBAGE_RESULTS))
def test_master_closes_a_slave_whose_map_result_is_garbage(start, garbage_prog,
                                                           what):
    """A fake slave answers make() with a bad map: the master closes that
    connection with the reason, and the job runs again on a real slave (no
    result is lost)."""
    payload, reason = GARBAGE_RESULTS[what]
    m = start([f"{garbage_prog}-master", "--listen", "127.0.0.1:0",
               "--spawn", "0"], env=fp.TOKEN_ENV)
    addr = m.wait_err(r"listening on (\S+)", timeout=20).group(1)
    s = fp.FakeSlave(addr)
    ordinal, jid, args = s.next_message()
    assert ordinal == SIZE
    assert args == _string_map([(b"a", 1)])      # the encoding, checked
    s.answer_int(ordinal, jid, 1)
    ordinal, jid, args = s.next_message()
    assert ordinal == MAKE
    s.send(ordinal, jid, payload)
    assert fp.closed_by_peer(s.sock)
    line = m.wait_err(r"closing connection from .*").group(0)
    assert re.search(reason, m.err), m.err
    assert line
    start([f"{garbage_prog}-slave", "--master", addr], env=fp.TOKEN_ENV)
    _check_good_run(m)


@pytest.mark.parametrize("what", sorted(GARBAGE_ARGS))
def test_slave_refuses_garbage_map_arguments(garbage_prog, what):
    """A fake master sends size() a bad map: the slave says why and exits 1
    without a crash."""
    payload, reason = GARBAGE_ARGS[what]
    with fp.FakeMaster(timeout=5, secret=fp.TOKEN) as fm:
        p = Proc([f"{garbage_prog}-slave", "--master", fm.addr],
                 env=fp.TOKEN_ENV)
        fm.learn_fingerprint(fm.accept())
        p.finish()
        p = Proc([f"{garbage_prog}-slave", "--master", fm.addr],
                 env=fp.TOKEN_ENV)
        try:
            link = fm.handshake(fm.accept(), heartbeat_ms=10000)
            link.sendall(fp.frame(SIZE, 7, payload))
            assert p.finish(timeout=5) == 1
            assert re.search(r"arguments of job 7 \('size'\) do not match",
                             p.err), p.err
            assert re.search(reason, p.err), p.err
        finally:
            p.kill()


# ------------------------------------------------------------ the example

def test_the_wordcount_example_merges_the_jobs_maps(tmp_path, runtime_built):
    exe = build_program(REPO / "examples" / "wordcount.ms", tmp_path / "wordcount")
    data = tmp_path / "texts"
    data.mkdir()
    (data / "a.txt").write_text("The cat and the dog.\nThe END\n")
    (data / "b.txt").write_text("dog dog cat, THE\n")
    (data / "c.txt").write_text("")
    r = run_master(exe, "--spawn", "2", data, "3", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "5 distinct words\n4 the\n3 dog\n2 cat\n"
    usage = run_master(exe, "--spawn", "0", timeout=60)
    assert "usage: wordcount-master" in usage.stderr
