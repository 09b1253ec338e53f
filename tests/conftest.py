"""Shared pytest setup: the --update-golden flag and process helpers."""
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite golden expected files (.out, .err, .<pass>.ir) from "
             "actual output; review `git diff` before committing")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="session")
def runtime_built():
    """Build the runtime libraries once per test session."""
    subprocess.run(["make", "-s", "-C", str(REPO / "runtime" / "c"),
                    f"OUT={REPO / 'build'}"], check=True, timeout=300)
    return REPO / "build"


def msc(*args, cwd=None, timeout=120):
    """Run the compiler as a user would; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "compiler", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


class Orphans(Exception):
    """Processes of a run's process group outlived its leader."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def run_bounded(cmd, *, timeout, cwd=None, input=None, env=None,
                orphan_grace=3.0):
    """Run `cmd` in its own process group, bounded in time.

    Whatever happens, every process of the group is killed afterwards. Raises
    subprocess.TimeoutExpired on a hang, and Orphans when processes of the
    group (say, local slaves) were still alive `orphan_grace` seconds after
    the leader exited: a master must not leave its slaves behind.
    """
    import signal
    import time
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    pgid = proc.pid
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
        deadline = time.monotonic() + orphan_grace
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(pgid):
            raise Orphans(f"{cmd[0]} left processes behind")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the group that proc (started with
    start_new_session=True) leads, and reap proc."""
    import signal
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
