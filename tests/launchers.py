"""Helpers of the launcher tests (test_launch_ssh.py, test_launch_srun.py): a private OpenSSH server
with generated keys and an ssh config naming its hosts, a ps sampler that
records every command line seen during a run, and the check that no slave
outlives its master.

The sshd runs as root on 127.0.0.1 on a free port (StrictModes no, keys
and AuthorizedKeysFile in a temporary directory); the tests point the
master at it with MS_SSH_COMMAND="ssh -F CONFIG". Hosts h1 and h2 are that
sshd; h3 is a closed port (an unreachable host).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time

import pytest

SSHD = "/usr/sbin/sshd"

# Squares of 0..N-1 (N: the first argument, else 40), summed; each job
# sleeps a little, so that a run with N = 2000 lasts long enough to be
# interrupted.
SQUARES = """\
job int sq(int x) {
    sleep(0.05);
    return x * x;
}

master {
    int n = 40;
    if (len(args()) > 0) n = int(args()[0]);
    vector<job<int>> js;
    for (int i = 0; i < n; i += 1) {
        js :: remote sq(i);
    }
    int total = 0;
    for (int i = 0; i < n; i += 1) {
        total += get(js[i]);
    }
    print("total " + str(total));
}
"""


def total(n: int) -> str:
    """What SQUARES prints for N = n."""
    return f"total {sum(i * i for i in range(n))}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_openssh() -> str | None:
    """None when sshd, ssh and ssh-keygen are there (installing Debian's
    openssh-server when they are not); else why the tests must skip."""
    if os.geteuid() != 0:
        return "the sshd tests run sshd as root, and this is not root"
    have = lambda: (os.access(SSHD, os.X_OK) and shutil.which("ssh")
                    and shutil.which("ssh-keygen"))
    if have():
        return None
    if not shutil.which("apt-get"):
        return "openssh-server is missing and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "openssh-server"],
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "openssh-server"]):
        try:
            subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if have():
            return None
    return "openssh-server is missing and apt-get could not install it"


class Sshd:
    """A running sshd and the ssh config that reaches it (see the module
    docstring). `ssh_command` is the MS_SSH_COMMAND to use."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-f", str(root / key)], check=True, timeout=60)
        (root / "authorized_keys").write_text(
            (root / "user_key.pub").read_text())
        self.port = free_port()
        (root / "sshd_config").write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
            f"PidFile {root / 'sshd.pid'}\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n")
        (root / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {(root / 'host_key.pub').read_text()}")
        host_lines = (f"  User root\n"
                      f"  IdentityFile {root / 'user_key'}\n"
                      "  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {root / 'known_hosts'}\n"
                      "  StrictHostKeyChecking yes\n"
                      "  ConnectTimeout 5\n")
        (root / "ssh_config").write_text(
            # h3: a port bound a moment and released, where nobody listens.
            f"Host h1 h2\n  HostName 127.0.0.1\n  Port {self.port}\n"
            + host_lines +
            f"Host h3\n  HostName 127.0.0.1\n  Port {free_port()}\n"
            + host_lines)
        self.ssh_command = f"ssh -F {root / 'ssh_config'}"
        pathlib.Path("/run/sshd").mkdir(exist_ok=True)  # its privsep dir
        self.log = open(root / "sshd.log", "wb")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(
                [*self.ssh_command.split(), "-o", "BatchMode=yes", "h1",
                 "true"], capture_output=True, text=True, timeout=30)
            if probe.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"sshd did not come up: {probe.stderr}\n"
                    f"{(root / 'sshd.log').read_text()}")
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def command_lines() -> list[tuple[str, str]]:
    """(state, command line) of every process, as `ps -ww -eo stat,args` (-ww: never cut short)."""
    out = subprocess.run(["ps", "-ww", "-eo", "stat=,args="], capture_output=True,
                         text=True, timeout=30).stdout
    rows = []
    for line in out.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            rows.append((parts[0], parts[1]))
    return rows


class PsSampler:
    """Samples `ps -eo args` every few milliseconds while in its `with`
    block; `lines` holds every distinct command line seen."""

    def __init__(self, every: float = 0.03):
        self.every = every
        self.lines: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.lines.update(args for _, args in command_lines())
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def live_processes(marker: str) -> list[str]:
    """Command lines holding `marker` of processes that still run (zombies
    waiting for their parent to reap them do not run)."""
    return [args for stat, args in command_lines()
            if marker in args and not stat.startswith("Z")
            and not args.startswith("ps ")]


def assert_none_left(marker: str, what: str, grace: float = 5.0):
    """Within `grace` seconds no process holding `marker` runs."""
    deadline = time.monotonic() + grace
    left = live_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = live_processes(marker)
    assert not left, f"{what}: still running {grace} s later: {left}"


def wait_for_lines(proc: subprocess.Popen, marker: str, count: int,
                   timeout: float = 20.0):
    """Wait until `count` processes holding `marker` run (the slaves)."""
    deadline = time.monotonic() + timeout
    while len(live_processes(marker)) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{count} processes with {marker!r} never ran")
        time.sleep(0.05)
