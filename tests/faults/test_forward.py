"""Where job output goes (SPEC 12.6, docs/language.md): what jobs print
reaches the master's stderr as whole lines, each prefixed with its job and
slave, from local slaves, from slaves started by hand over TCP (sealed),
and never blocks a job on a master that stops reading; `--no-forward`
keeps a slave's lines on its own stdout and stderr; garbage OUTPUT
messages close the connection. Programs: tests/faults/forward/*.ms."""
from __future__ import annotations

import os
import pathlib
import re
import signal
import struct

import pytest

import fakepeer as fp
from harness import build_program_dir
from test_faults import listening, master_cmd, slave_cmd

HERE = pathlib.Path(__file__).resolve().parent / "forward"
PAD = "x" * 6

# A forwarded line: [JOB#JID slave N] or [JOB#JID slave N stderr].
LINE = re.compile(r"^\[(\w+)#(\d+) slave (\d+)( stderr)?\] (.*)$")


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    """Every tests/faults/forward/*.ms compiled; name -> path prefix."""
    return build_program_dir(HERE, tmp_path_factory.mktemp("forward"))


@pytest.fixture
def start(start):
    """The conftest fixture, every process given the tests' secret."""
    def run(cmd, env=None, **kw):
        return start(cmd, env={**fp.TOKEN_ENV, **(env or {})}, **kw)
    return run


def check_shout(err: str, jobs: int, lines: int, long_len: int,
                slaves: set[int]) -> None:
    """Every stderr line of a shout run that is not the master's own (a
    `NAME: ` log line) parses as a forwarded line, and the lines of each
    job are all there, whole and in order, on the right stream."""
    seen: dict[tuple[int, bool], list[str]] = {}
    used = set()
    for ln in err.splitlines():
        if ln.startswith(("shout-master: ", "shout-slave: ")):
            continue
        m = LINE.match(ln)
        assert m, f"not a forwarded line: {ln!r}\n{err}"
        name, jid, slave, to_err, text = m.groups()
        assert name == "shout"
        used.add(int(slave))
        seen.setdefault((int(jid), bool(to_err)), []).append(text)
    assert used <= slaves, (used, slaves)
    for k in range(jobs):
        pad = PAD[:k % 7]
        for to_err, word in ((False, "out"), (True, "err")):
            want = [f"{word} {k} {i} {pad}" for i in range(lines)]
            if k == 0 and not to_err:
                long = "".join(chr(97 + i % 26) for i in range(long_len))
                want += [long[i:i + 3584] for i in range(0, long_len, 3584)]
                # "a" then 3000 two-byte characters: the first piece ends
                # before the character that byte 3584 is in.
                want += ["a" + "\u00e9" * 1791, "\u00e9" * 1209]
                want += ["two", "lines\tand a tab ?[2J"]
            assert seen.get((k + 1, to_err), []) == want, (k, to_err)


def test_local_slaves_lines_are_whole_and_prefixed(start, progs):
    """Many jobs on two local slaves (threads each) print at once: every
    line arrives whole, prefixed, in its job's order; stdout holds only
    what the master block printed."""
    jobs, lines = 40, 300
    m = start(master_cmd(progs, "shout", "--spawn", 2, "--", jobs, lines,
                         9000))
    assert m.finish(60) == 0, m.err
    assert m.out == f"{sum(range(jobs))}\n"
    check_shout(m.err, jobs, lines, 9000, {1, 2})


def test_a_slave_started_by_hand_forwards_over_tcp(start, progs):
    """A slave started by hand (MS_TOKEN: authenticated, sealed) with four
    threads: its jobs' lines reach the master's stderr, not its own."""
    jobs, lines = 24, 200
    m = start(master_cmd(progs, "shout", "--listen", "127.0.0.1:0", "--",
                         jobs, lines, 4000))
    s = start(slave_cmd(progs, "shout", listening(m), "--threads", 4))
    assert m.finish(60) == 0, m.err
    assert s.finish() == 0, s.err
    assert m.out == f"{sum(range(jobs))}\n"
    check_shout(m.err, jobs, lines, 4000, {1})
    assert s.out == "" and s.err == "", (s.out, s.err)


def test_no_forward_keeps_lines_on_the_slave(start, progs):
    m = start(master_cmd(progs, "shout", "--listen", "127.0.0.1:0", "--",
                         3, 2, 10))
    s = start(slave_cmd(progs, "shout", listening(m), "--threads", 1,
                        "--no-forward"))
    assert m.finish(60) == 0, m.err
    assert s.finish() == 0, s.err
    assert m.out == "3\n"
    assert not [ln for ln in m.err.splitlines() if LINE.match(ln)], m.err
    out = [f"out {k} {i} {PAD[:k]}" for k in range(3) for i in range(2)]
    out[2:2] = ["abcdefghij", "a" + "\u00e9" * 3000, "two",
                "lines\tand a tab \x1b[2J"]
    assert s.out.splitlines() == out, s.out
    assert s.err.splitlines() == [f"err {k} {i} {PAD[:k]}" for k in range(3)
                                  for i in range(2)], s.err


def test_a_stopped_master_does_not_block_the_job(start, progs):
    """The master is stopped (SIGSTOP) while its job prints 20 MB: the job
    still finishes (its slave, whose stderr is the master's, says how many
    lines it dropped while the master was stopped); once the master goes
    on it gets the lines that fit, in order, the count of the others, and
    the result."""
    n = 200000
    m = start(master_cmd(progs, "flood", "--spawn", 1, "--heartbeat-timeout",
                         60, "--", n, 0.5))
    m.wait_err(r"^\[flood#1 slave 1\] started$")
    os.kill(m.pid, signal.SIGSTOP)
    try:
        said = m.wait_err(r"^flood-slave: job 1 \(flood\): (\d+) lines of "
                          r"output dropped: the master did not take them",
                          timeout=60)
    finally:
        os.kill(m.pid, signal.SIGCONT)
    dropped = int(said.group(1))
    assert m.finish(60) == 0, m.err[-2000:]
    assert m.out == f"{n}\n"
    got, told = [], 0
    for ln in m.err.splitlines():
        if x := re.match(r"^\[flood#1 slave 1\] flood (\d+) \.+$", ln):
            got.append(int(x.group(1)))
        elif x := re.match(r"^\[flood#1 slave 1\] (\d+) lines of output "
                           r"dropped \(the slave's buffer was full\)$", ln):
            told += int(x.group(1))
    assert 0 < dropped < n and told == dropped, (dropped, told)
    assert len(got) + dropped == n and got == sorted(got), len(got)


def test_a_line_is_sent_at_once_not_at_the_job_end(start, progs):
    """The job prints and sleeps for a minute: its line is at the master
    already; a slave killed -9 then has lost nothing it printed."""
    m = start(master_cmd(progs, "napper", "--listen", "127.0.0.1:0",
                         "--verbose"))
    s = start(slave_cmd(progs, "napper", listening(m)))
    m.wait_err(r"^\[napper#1 slave 1\] awake 7$", timeout=10)
    os.kill(s.pid, signal.SIGKILL)
    m.wait_err(r"lost slave 1 at ")
    assert s.out == "", s.out


# ----------------------------------------------- OUTPUT from a fake slave

def fake_slave_job(addr: str) -> tuple[fp.FakeSlave, int, int]:
    s = fp.FakeSlave(addr)
    ordinal, jid, _ = s.next_message()
    return s, ordinal, jid


def output(stream: int, data: bytes) -> bytes:
    return bytes([fp.OUTPUT, stream]) + data


OUT, ERR, DROPPED = fp.STREAM_STDOUT, fp.STREAM_STDERR, fp.STREAM_DROPPED


@pytest.mark.parametrize("payload, jid_delta, why", [
    (output(OUT, b"hello"), 100, r"OUTPUT for job \d+, which it was not "
                               r"running"),
    (output(7, b"hello"), 0, r"OUTPUT for job \d+ on stream 7 with 5 bytes"),
    (output(OUT, b"y" * 3585), 0, r"OUTPUT line of 3585 bytes for job \d+, "
                                r"over the limit of 3584"),
    (output(DROPPED, b"\1\0\0"), 0, r"OUTPUT for job \d+ on stream 3 with 3 bytes"),
    (bytes([fp.OUTPUT]), 0, r"OUTPUT of 1 byte, without its stream"),
])
def test_garbage_output_closes_the_connection(start, progs, payload,
                                              jid_delta, why):
    m = start(master_cmd(progs, "napper", "--listen", "127.0.0.1:0"))
    s, _, jid = fake_slave_job(listening(m))
    try:
        s.send(0, jid + jid_delta, payload)
        m.wait_err(r"closing connection from 127\.0\.0\.1:\d+: " + why)
        assert fp.closed_by_peer(s.sock)
    finally:
        s.close()
    assert not [ln for ln in m.err.splitlines() if LINE.match(ln)], m.err


def test_output_from_a_fake_slave_is_sanitized_and_prefixed(start, progs):
    """Control characters (C0 but tab, C1, a lone C1 byte) become `?`; the
    dropped count is said; the job's result still counts."""
    m = start(master_cmd(progs, "napper", "--listen", "127.0.0.1:0"))
    s, ordinal, jid = fake_slave_job(listening(m))
    try:
        s.send(0, jid, output(OUT, b"caf\xc3\xa9\t\x1b[2J \xc2\x9b \x9b end"))
        s.send(0, jid, output(ERR, b""))
        s.send(0, jid, output(DROPPED, struct.pack("<I", 1)))
        s.answer_int(ordinal, jid, 7)
        assert m.finish() == 0, m.err
    finally:
        s.close()
    assert m.out == "7\n"
    lines = [ln for ln in m.err.splitlines() if ln.startswith("[")]
    assert lines == [f"[napper#{jid} slave 1] caf\u00e9\t?[2J ? ? end",
                     f"[napper#{jid} slave 1 stderr] ",
                     f"[napper#{jid} slave 1] 1 line of output dropped "
                     "(the slave's buffer was full)"], m.err
