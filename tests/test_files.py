"""SPEC 12.1 and 12.2 beyond what a golden program can show: usage errors
of the master's command line (exit status 2), write_file's atomicity (a
reader never sees a part; the temporary file is gone after a failure, the
old content kept), permission bits, inputs too large for a string, files
whose size is not known in advance, and msi agreeing with the runtime on
arguments and stdin.

The golden programs of tests/golden/files/ cover each builtin's normal use
and its runtime errors in the master and in jobs."""
from __future__ import annotations

import os
import pathlib
import resource
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from harness import REPO, build_program, kill_group, run_master, write_program

TIMEOUT = 60

ECHO_ARGS = """
master {
  vector<string> a = args();
  for (int i = 0; i < len(a); i += 1) { print(a[i]); }
}
"""

WRITE_ARG = """
// write_file(args()[0], args()[1]); then what the directory holds.
master {
  vector<string> a = args();
  write_file(a[0], a[1]);
  print("written");
}
"""

READ_ARG = """
master {
  string s = read_file(args()[0]);
  print(len(s));
  if (len(s) > 0) { print(int(s[len(s) - 1])); }
}
"""

# Replaces big.txt with 1 MiB of one letter, then of another, many times.
FLIP = """
master {
  string a = "a";
  string b = "b";
  for (int i = 0; i < 20; i += 1) { a = a + a; b = b + b; }
  string digits = args()[0];
  int n = 0;
  for (int i = 0; i < len(digits); i += 1) { n = n * 10 + int(digits[i]) - int('0'); }
  for (int i = 0; i < n; i += 1) {
    if (i % 2 == 0) { write_file("big.txt", a); } else { write_file("big.txt", b); }
  }
  print(n);
}
"""

STDIN = """
master { string s = read_stdin(); print(len(s)); print(len(read_stdin())); }
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory, runtime_built):
    d = tmp_path_factory.mktemp("files")
    out = {}
    for name, text in [("echo", ECHO_ARGS), ("write", WRITE_ARG),
                       ("read", READ_ARG), ("flip", FLIP), ("stdin", STDIN)]:
        out[name] = build_program(write_program(d, name, text), d / name)
    return out


def files_in(d: pathlib.Path) -> list[str]:
    return sorted(os.listdir(d))


# ------------------------------------------------------------ the command line

def test_unknown_option_before_the_programs_arguments_is_a_usage_error(programs):
    r = run_master(programs["echo"], "--spawn", "1", "--bogus", "x",
                   timeout=TIMEOUT)
    assert r.returncode == 2, r.stderr
    assert "unknown option '--bogus'" in r.stderr
    assert r.stdout == ""


def test_an_option_after_the_programs_arguments_start_is_theirs(programs):
    r = run_master(programs["echo"], "--spawn", "1", "file", "--bogus",
                   "--spawn", "--", timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["file", "--bogus", "--spawn", "--", ""]


def test_an_options_value_is_not_a_program_argument(programs):
    r = run_master(programs["echo"], "--spawn", "2", "--heartbeat-timeout",
                   "5", "a", timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a\n"


def test_help_names_the_programs_arguments(programs):
    r = run_master(programs["echo"], "--help", timeout=TIMEOUT)
    assert r.returncode == 0
    assert "[--] [ARG ...]" in r.stdout


# ------------------------------------------------------------ write_file

def test_a_reader_never_sees_a_partial_file(programs, tmp_path):
    """While the program replaces a 1 MiB file 300 times, another process
    reads it as fast as it can: every read is one whole version."""
    whole = {b"a" * (1 << 20), b"b" * (1 << 20)}
    proc = subprocess.Popen([f"{programs['flip']}-master", "--spawn", "0",
                             "300"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    seen, bad = 0, []
    try:
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                data = (tmp_path / "big.txt").read_bytes()
            except FileNotFoundError:
                continue
            seen += 1
            if data not in whole:
                bad.append(len(data))
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err
    assert out == b"300\n"
    assert not bad, f"{len(bad)} of {seen} reads saw a partial file: {bad[:5]}"
    assert seen > 10
    assert files_in(tmp_path) == ["big.txt"]


def test_a_failed_write_keeps_the_old_content_and_removes_its_temporary(programs, tmp_path):
    """A write cut short by the file size limit (EFBIG: SIGXFSZ ignored, as
    an ignored signal stays across exec) fails with the system's reason;
    the target keeps its old content and no temporary file is left."""
    (tmp_path / "big.txt").write_bytes(b"old")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    proc = subprocess.Popen([f"{programs['write']}-master", "--spawn", "0",
                             "big.txt", "x" * 5000], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=limit,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, err
    assert "write.ms:5:3: runtime error: cannot write 'big.txt': File too large" in err
    assert (tmp_path / "big.txt").read_bytes() == b"old"
    assert files_in(tmp_path) == ["big.txt"]


def test_writing_over_a_directory_leaves_no_temporary(programs, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    r = run_master(programs["write"], "--spawn", "0", "d", "data",
                   cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 1
    assert "cannot write 'd': Is a directory" in r.stderr
    assert files_in(tmp_path) == ["d"]
    assert files_in(tmp_path / "d") == ["x"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_writing_into_a_read_only_directory(programs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = run_master(programs["write"], "--spawn", "0", "ro/f", "data",
                       cwd=tmp_path, timeout=TIMEOUT)
    finally:
        ro.chmod(0o755)
    assert r.returncode == 1
    assert "cannot write 'ro/f': Permission denied" in r.stderr
    assert files_in(ro) == []


def test_an_existing_file_keeps_its_permission_bits(programs, tmp_path):
    target = tmp_path / "secret.txt"
    target.write_text("old")
    target.chmod(0o640)
    r = run_master(programs["write"], "--spawn", "0", "secret.txt", "new",
                   cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_new_file_gets_0666_less_the_umask(programs, tmp_path):
    old = os.umask(0o027)
    try:
        r = run_master(programs["write"], "--spawn", "0", "fresh.txt", "x",
                       cwd=tmp_path, timeout=TIMEOUT)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o640


def test_a_symlink_is_replaced_not_followed(programs, tmp_path):
    (tmp_path / "real.txt").write_text("real")
    (tmp_path / "link").symlink_to("real.txt")
    r = run_master(programs["write"], "--spawn", "0", "link", "new",
                   cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "link").read_text() == "new"
    assert (tmp_path / "real.txt").read_text() == "real"


# ------------------------------------------------------------ reading

def test_a_large_file_is_read_whole(programs, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(b"\0" * (100 << 20))
        f.write(b"\x07")
    r = run_master(programs["read"], "--spawn", "0", "big.bin", cwd=tmp_path,
                   timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{(100 << 20) + 1}\n7\n"


def test_a_file_too_large_for_a_string_is_an_error(programs, tmp_path):
    """A string that could not cross the wire (its u32 count) is refused
    before anything is read: a sparse file costs no disk."""
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(1 << 32)
    r = run_master(programs["read"], "--spawn", "0", "huge", cwd=tmp_path,
                   timeout=TIMEOUT)
    assert r.returncode == 1
    assert "read.ms:3:14: runtime error: cannot read 'huge': File too large" in r.stderr


def test_a_file_of_unknown_size_is_read_to_its_end(programs):
    """/proc files say their size is 0; they are read until end of file."""
    r = run_master(programs["read"], "--spawn", "0", "/proc/self/maps",
                   timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    size, last = r.stdout.split()
    assert int(size) > 100 and last == "10"


def test_read_stdin_from_a_file_and_from_a_directory(programs, tmp_path):
    data = tmp_path / "in.txt"
    data.write_bytes(b"x" * 100000)
    with open(data, "rb") as f:
        r = subprocess.run([f"{programs['stdin']}-master", "--spawn", "0"],
                           stdin=f, capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "100000\n0\n"
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        r = subprocess.run([f"{programs['stdin']}-master", "--spawn", "0"],
                           stdin=fd, capture_output=True, text=True,
                           timeout=TIMEOUT)
    finally:
        os.close(fd)
    assert r.returncode == 1
    assert ("stdin.ms:2:21: runtime error: cannot read standard input: "
            "Is a directory") in r.stderr


# ------------------------------------------------------------ examples/sweep.ms

def test_the_sweep_example_takes_its_range_and_writes_its_results(tmp_path, runtime_built):
    exe = build_program(REPO / "examples" / "sweep.ms", tmp_path / "sweep")
    r = run_master(exe, "--spawn", "2", "1", "8", "out.csv", cwd=tmp_path,
                   timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "wrote 7 results to out.csv\nmost steps: 7 (16)\n"
    assert (tmp_path / "out.csv").read_text() == (
        "n,steps\n1,0\n2,1\n3,7\n4,2\n5,5\n6,8\n7,16\n")



def test_the_dircount_example_counts_a_directory_given_as_argument(tmp_path, runtime_built):
    exe = build_program(REPO / "examples" / "dircount.ms", tmp_path / "dircount")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one two\tthree\nfour five\n")
    (data / "b.txt").write_text("six")
    (data / "sub").mkdir()
    r = run_master(exe, "--spawn", "2", str(data), cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("2\t5\t24\ta.txt\n1\t1\t3\tb.txt\n"
                        "3\t6\t27\ttotal\n")
    assert "sub: " in r.stderr and "Is a directory" in r.stderr, r.stderr
    usage = run_master(exe, "--spawn", "1", cwd=tmp_path, timeout=TIMEOUT)
    assert usage.returncode == 1 and "usage: dircount-master" in usage.stderr

# ------------------------------------------------------------ msi

def test_msi_takes_the_programs_arguments_and_stdin(tmp_path):
    src = tmp_path / "p.ms"
    src.write_text("""
master {
  vector<string> a = args();
  print(len(a)); print(a[0]); print(a[1]);
  eprint(read_stdin()); print(len(read_stdin()));
  write_file("o.txt", a[0]); print(read_file("o.txt"));
  print(list_dir(".")[1]);
}
""")
    r = subprocess.run([sys.executable, "-m", "tools.msi", str(src), "-x",
                        "--"], input="in\n", capture_output=True, text=True,
                       cwd=tmp_path, timeout=TIMEOUT,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n-x\n--\n0\n-x\np.ms\n"
    assert r.stderr == "in\n\n"
