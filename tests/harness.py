"""Process helpers shared by the test modules: run the compiler, build a
program, run processes bounded in time in a session of their own, and make
sure none outlives its run.

Plain functions and classes (no fixtures: those are in tests/conftest.py),
so that a test module run outside pytest (`python -m tests.test_differential`)
can use them too.
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Environment variables a run must not inherit from the shell: a secret
# would change the handshake, and the runtime fixture reads the others.
DROPPED_ENV = ("MS_TOKEN", "FIXTURE_MODE", "FIXTURE_N")


def clean_env(extra=None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(extra or {})
    return env


# ------------------------------------------------------------ compiler

def msc(*args, cwd=None, timeout=120):
    """Run the compiler as a user would; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "compiler", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def build_program(ms: pathlib.Path, out: pathlib.Path, *options) -> pathlib.Path:
    """Compile `ms` into OUT-master and OUT-slave; returns `out`. The source
    is named relative to its directory (the compiler's cwd), so messages
    read NAME.ms:LINE:COL with no machine path."""
    built = msc(ms.name, *options, "-o", out, cwd=ms.parent)
    assert built.returncode == 0, f"{ms.name}: {built.stderr}"
    return out


def build_program_dir(directory: pathlib.Path, out: pathlib.Path) -> dict:
    """Every DIRECTORY/*.ms compiled into OUT; name -> path prefix of
    NAME-master and NAME-slave."""
    return {ms.stem: build_program(ms, out / ms.stem)
            for ms in sorted(directory.glob("*.ms"))}


def write_program(directory: pathlib.Path, name: str, text: str) -> pathlib.Path:
    ms = directory / f"{name}.ms"
    ms.write_text(text)
    return ms


def build_programs(directory: pathlib.Path, programs: dict) -> dict:
    """Write and build each of `programs` (name -> source text) in
    `directory`; returns name -> path prefix of NAME-master and NAME-slave."""
    return {name: build_program(write_program(directory, name, text),
                                directory / name)
            for name, text in programs.items()}


def run_master(prefix, *args, timeout, cwd=None, env=None):
    """Run PREFIX-master with `args` through run_bounded; a hang fails the
    test with the program's name."""
    cmd = [f"{prefix}-master", *map(str, args)]
    try:
        return run_bounded(cmd, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{pathlib.Path(cmd[0]).name} did not finish within "
                    f"{timeout} s")


# ------------------------------------------------------------ processes

def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time `pid` has used (0 once it is gone)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_busy(pids, seconds=0.3, timeout=20.0) -> int:
    """The first of `pids` to have used `seconds` of CPU (running a job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids:
            if cpu_seconds(pid) >= seconds:
                return pid
        time.sleep(0.02)
    raise AssertionError(f"none of {pids} got busy within {timeout} s")


class Orphans(Exception):
    """Processes of a run's process group outlived its leader; `result` is
    the leader's CompletedProcess."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the session led by `proc` and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait()


def wait_group_gone(pgid: int, grace: float = 3.0) -> bool:
    """Whether every process of the group ended within `grace` seconds."""
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not group_alive(pgid)


def run_bounded(cmd, *, timeout, cwd=None, input=None, env=None,
                orphan_grace=3.0, text=True):
    """Run `cmd` in its own process group, bounded in time.

    Whatever happens, every process of the group is killed afterwards. Raises
    subprocess.TimeoutExpired on a hang, and Orphans when processes of the
    group (say, local slaves) were still alive `orphan_grace` seconds after
    the leader exited: a master must not leave its slaves behind. With
    text=False, stdout and stderr are bytes (a program may print any byte).
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=text,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
        result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if not wait_group_gone(proc.pid, orphan_grace):
            raise Orphans(f"{cmd[0]} left processes behind", result)
        return result
    finally:
        kill_group(proc)


class Proc:
    """A process in a session of its own, started with clean_env(env);
    stderr (with merge=True, stdout too: a slave's jobs print there) is
    collected line by line by a thread, so that a test can wait for a line
    while the process runs."""

    def __init__(self, cmd, env=None, cwd=None, merge=False):
        self.cmd = list(map(str, cmd))
        self.p = subprocess.Popen(self.cmd, env=clean_env(env), cwd=cwd,
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=(subprocess.STDOUT if merge
                                          else subprocess.PIPE),
                                  start_new_session=True)
        self.pid = self.p.pid
        self.err_lines: list[str] = []
        self._out = b""
        self._cv = threading.Condition()
        self._threads = [threading.Thread(
            target=self._pump_err,
            args=(self.p.stdout if merge else self.p.stderr,), daemon=True)]
        if not merge:
            self._threads.append(threading.Thread(target=self._pump_out,
                                                  daemon=True))
        for t in self._threads:
            t.start()

    def _pump_err(self, pipe):
        for line in pipe:
            with self._cv:
                self.err_lines.append(line.decode(errors="replace"))
                self._cv.notify_all()

    def _pump_out(self):
        self._out = self.p.stdout.read()

    @property
    def err(self) -> str:
        with self._cv:
            return "".join(self.err_lines)

    @property
    def out(self) -> str:
        return self._out.decode(errors="replace")

    def wait_err(self, pattern, count=1, timeout=15.0) -> re.Match:
        """Wait until `pattern` matched `count` lines of stderr; the first
        match. Fails at once when the process ended without them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                found = [m for m in map(rx.search, self.err_lines) if m]
                if len(found) >= count:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None
                                 and not self._threads[0].is_alive()):
                    raise AssertionError(
                        f"{pattern!r} x{count} never appeared in the stderr of "
                        f"{self.cmd[0]}:\n{''.join(self.err_lines)}")
                self._cv.wait(min(left, 0.2))

    def finish(self, timeout=30.0) -> int:
        """Wait for the exit; then nothing of its session may be left."""
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.cmd[0]} did not end within {timeout} s "
                                 f"(a hang); stderr:\n{self.err}")
        for t in self._threads:
            t.join(5)
        assert wait_group_gone(self.pid), \
            f"processes of {self.cmd[0]} outlived it (orphans); stderr:\n{self.err}"
        return self.p.returncode

    def kill(self):
        kill_group(self.p)
