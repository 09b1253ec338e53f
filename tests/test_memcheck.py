"""valgrind memcheck of compiled programs: no definitely-lost bytes and no
invalid reads or writes, in the master and (for programs with jobs) in a
slave (SPEC section 3: "valgrind reports no definitely-lost bytes in master
or slave").

A program without jobs runs as `NAME-master --spawn 0`. A program with jobs
runs its master with `--spawn 0 --listen 127.0.0.1:0` and one slave started
by hand, `NAME-slave --master 127.0.0.1:PORT` (PORT read from the master's
"listening on" log line), both under valgrind and both given the tests'
secret (so the connection is authenticated and sealed, as a user's is). Skipped when valgrind is not
installed.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

import fakepeer as fp
from harness import REPO, build_program, clean_env, kill_group

GOLDEN = REPO / "tests" / "golden"
VALGRIND = shutil.which("valgrind")
TIMEOUT = 120

pytestmark = pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")

# A representative subset (golden programs, AREA/NAME): strings, copies,
# nested writes, temporaries, scope exits, moves at last uses (vectors,
# strings, structs, maps; branches), and jobs with vectors, strings and
# structs both ways, and jobs that own their arguments.
MASTER_ONLY = ["vectors/" + name for name in (
    "strings", "temporaries", "scope-exits", "append-self", "struct-loop",
    "string-build", "index-append-old-value")] + [
    "moves/append-helpers", "moves/branches", "moves/read-later",
    "moves/struct-fields"]
WITH_JOBS = ["vectors/remote-values", "vectors/remote-nested",
             "vectors/handles-dropped", "moves/remote-args"]
# Jobs abandoned by a longjmp (a runtime error, a cancel) while their frames
# own vectors: the slave frees those (values.c tracks each job's vectors).
ABANDONED_JOBS = ["vectors/job-fail-frees", "vectors/job-cancel-frees"]


def _valgrind(log):
    return [VALGRIND, "-q", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--error-exitcode=99",
            f"--log-file={log}"]


def _build(name, tmp_path):
    return build_program(GOLDEN / f"{name}.ms",
                         tmp_path / name.replace("/", "-"))


def _report(log) -> str:
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("name", MASTER_ONLY)
def test_master_is_clean(name, tmp_path, runtime_built):
    exe = _build(name, tmp_path)
    log = tmp_path / "master.vg"
    run = subprocess.run(_valgrind(log) + [f"{exe}-master", "--spawn", "0"],
                         capture_output=True, text=True, timeout=TIMEOUT,
                         cwd=GOLDEN)
    assert run.returncode == 0, _report(log) + run.stderr
    assert run.stdout == (GOLDEN / f"{name}.out").read_text()
    assert _report(log) == ""


@pytest.mark.parametrize("name", WITH_JOBS)
def test_master_and_slave_are_clean(name, tmp_path, runtime_built):
    _check_master_and_slave(name, tmp_path)


@pytest.mark.parametrize("name", ABANDONED_JOBS)
def test_slave_frees_failed_and_cancelled_jobs(name, tmp_path, runtime_built):
    _check_master_and_slave(name, tmp_path)


def _check_master_and_slave(name, tmp_path):
    exe = _build(name, tmp_path)
    mlog, slog = tmp_path / "master.vg", tmp_path / "slave.vg"
    master = subprocess.Popen(
        # valgrind runs one thread at a time, so a slave busy in a loop may
        # answer heartbeats late: a long timeout keeps it from counting as lost.
        _valgrind(mlog) + [f"{exe}-master", "--spawn", "0", "--listen",
                           "127.0.0.1:0", "--heartbeat-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=GOLDEN, start_new_session=True, env=clean_env(fp.TOKEN_ENV))
    slave = None
    try:
        port = None
        deadline = time.monotonic() + TIMEOUT
        while port is None and time.monotonic() < deadline:
            line = master.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = m.group(1)
        assert port is not None, "the master did not say where it listens"
        slave = subprocess.Popen(
            _valgrind(slog) + [f"{exe}-slave", "--master",
                               f"127.0.0.1:{port}", "--threads", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=clean_env(fp.TOKEN_ENV))
        out, err = master.communicate(timeout=TIMEOUT)
        slave_err = slave.communicate(timeout=TIMEOUT)[1]
        assert master.returncode == 0, _report(mlog) + err
        assert out == (GOLDEN / f"{name}.out").read_text()
        assert _report(mlog) == ""
        assert slave.returncode == 0, _report(slog) + slave_err
        assert _report(slog) == ""
    finally:
        kill_group(master)
        if slave is not None:
            kill_group(slave)
