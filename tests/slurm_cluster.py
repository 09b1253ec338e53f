"""A real Slurm cluster of one node, this machine, brought up from scratch
for the tests and torn down after them (SPEC 14, issue 12).

`slurm_cluster` (a module-scoped fixture; a test module imports it by name)
installs Debian's `slurm-wlm` and `munge` when they are missing (as root,
with apt-get), then starts, all in one temporary directory so that nothing
clashes with a system installation:

- `munged` with its own key, socket, pid, seed and log files;
- `slurmctld -D` and `slurmd -D` (children of the test process) with a
  generated slurm.conf: SlurmUser=root, ProctrackType=proctrack/linuxproc,
  TaskPlugin=task/none, SelectType=select/cons_tres, one node named as this
  machine (`hostname -s`) with its real CPUs and memory (`slurmd -C`), free
  ports, AuthType=auth/munge through that munge socket (AuthInfo).

Every Slurm command of a test must run with `cluster.env` (SLURM_CONF
names the generated slurm.conf). The finalizer cancels every job, stops the
daemons and munged and kills any slurmstepd they left, even when the set-up
or a test failed. What cannot be had (not root, no apt-get, a package that
will not install) skips the tests with the reason printed, never silently;
a daemon that does not come up once installed is an error, with its log.
Every wait is bounded.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from harness import clean_env
from launchers import free_port

# Executable -> the Debian package that has it.
NEEDED = {"munged": "munge", "mungekey": "munge", "slurmctld": "slurm-wlm",
          "slurmd": "slurm-wlm", "srun": "slurm-wlm", "sbatch": "slurm-wlm",
          "sinfo": "slurm-wlm", "squeue": "slurm-wlm", "scancel": "slurm-wlm",
          "scontrol": "slurm-wlm"}
SBIN = ("/usr/sbin", "/sbin")
INSTALL_TIMEOUT = 900
UP_TIMEOUT = 60


def skip(reason: str):
    """Skip, saying why on the terminal as well as in pytest's summary."""
    print(f"\nslurm tests skipped: {reason}", file=sys.__stderr__, flush=True)
    pytest.skip(reason)


def which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def install_packages() -> None:
    """apt-get install what NEEDED lacks (apt-get update first when the
    package lists do not know them); skip when that cannot be done."""
    missing = sorted({pkg for exe, pkg in NEEDED.items() if which(exe) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        skip(f"{', '.join(missing)} not installed and not root to install them")
    if which("apt-get") is None:
        skip(f"{', '.join(missing)} not installed and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=300", *missing]

    def run(cmd):
        try:
            return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            skip(f"`{' '.join(cmd)}` did not finish within {INSTALL_TIMEOUT} s")

    print(f"\ninstalling {', '.join(missing)} for the Slurm tests",
          file=sys.__stderr__, flush=True)
    done = run(install)
    if done.returncode != 0:
        run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"])
        done = run(install)
    still = sorted({pkg for exe, pkg in NEEDED.items() if which(exe) is None})
    if done.returncode != 0 or still:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        skip(f"apt-get could not install {', '.join(still or missing)}: "
             + " / ".join(tail))


def node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, Boards,
    SocketsPerBoard, CoresPerSocket, ThreadsPerCore, RealMemory."""
    out = subprocess.run([which("slurmd"), "-C"], capture_output=True,
                         text=True, timeout=30).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("NodeName=")), "")
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
            "ThreadsPerCore", "RealMemory")
    if "CPUs" not in fields:
        fields = {"CPUs": str(os.cpu_count() or 1)}
    return {k: fields[k] for k in keep if k in fields}


def stepd_pids(spool: pathlib.Path) -> list[int]:
    """The slurmstepd processes our slurmd started: each holds a listening
    Unix socket in our spool directory (they outlive slurmd by design)."""
    inodes = set()
    try:
        for row in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]:
            cols = row.split()
            if len(cols) >= 8 and cols[7].startswith(str(spool) + "/"):
                inodes.add(f"socket:[{cols[6]}]")
    except OSError:
        return []
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in inodes for fd in fds):
                pids.append(int(entry))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


class SlurmCluster:
    """The daemons, the files and the environment of one cluster."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.spool = root / "slurmd"
        self.munge_socket = root / "munge" / "munge.socket"
        self.env = clean_env({"SLURM_CONF": str(self.conf)})
        for var in [k for k in self.env if k.startswith(("SLURM_", "SBATCH_",
                                                         "SRUN_", "SALLOC_"))]:
            if var != "SLURM_CONF":
                del self.env[var]
        self.daemons: dict[str, subprocess.Popen] = {}
        self.cpus = 1

    # ------------------------------------------------------------ set-up

    def start(self) -> None:
        self.start_munge()
        self.write_conf()
        logs = self.root / "log"
        for name, cmd in (
                ("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)]),
                ("slurmd", [which("slurmd"), "-D", "-f", str(self.conf),
                            "-N", self.node])):
            out = open(logs / f"{name}.out", "wb")
            self.daemons[name] = subprocess.Popen(
                cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
        self.wait_idle()

    def start_munge(self) -> None:
        d = self.munge_socket.parent
        d.mkdir(mode=0o700)
        key = d / "munge.key"
        made = subprocess.run([which("mungekey"), "--create", "--keyfile", str(key)],
                              capture_output=True, text=True, timeout=30)
        if made.returncode != 0:
            raise AssertionError(f"mungekey could not make a key: {made.stderr.strip()}")
        key.chmod(0o600)
        cmd = [which("munged"), "--foreground", "--force",
               "--socket", str(self.munge_socket), "--key-file", str(key),
               "--pid-file", str(d / "munged.pid"), "--seed-file", str(d / "munged.seed"),
               "--log-file", str(d / "munged.log"), "--num-threads", "2"]
        with open(d / "munged.err", "wb") as err:
            self.daemons["munged"] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
        deadline = time.monotonic() + 15
        while not self.munge_socket.exists():
            if self.daemons["munged"].poll() is not None or time.monotonic() > deadline:
                raise AssertionError("munged did not start: " + self.read(d / "munged.err")
                                     + self.read(d / "munged.log"))
            time.sleep(0.05)

    def write_conf(self) -> None:
        for sub in ("state", "slurmd", "log", "run"):
            (self.root / sub).mkdir(exist_ok=True)
        hw = node_hardware()
        self.cpus = int(hw["CPUs"])
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        # CR_CPU: tasks are counted in CPUs (hardware threads), not cores,
        # so that a node of N CPUs runs N one-CPU tasks.
        plugstack = self.root / "plugstack.conf"
        plugstack.write_text("")
        r = self.root
        self.conf.write_text(f"""\
# Generated by tests/slurm_cluster.py for one test session.
ClusterName=mstest
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={self.spool}
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
PlugStackConfig={plugstack}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldDebug=info
SlurmdDebug=info
NodeName={self.node} NodeAddr=127.0.0.1 {node} State=UNKNOWN
PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")

    def wait_idle(self) -> None:
        """Until `sinfo` shows our node idle; fails with the logs if it
        never does."""
        deadline = time.monotonic() + UP_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            for name, p in self.daemons.items():
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited with status {p.returncode}:\n"
                                         + self.logs())
            got = self.run(["sinfo", "-h", "-N", "-n", self.node, "-o", "%T"],
                           check=False, timeout=10)
            state = got.stdout.strip()
            if got.returncode == 0 and state == "idle":
                return
            time.sleep(0.25)
        raise AssertionError(f"node {self.node} not idle within {UP_TIMEOUT} s "
                             f"(sinfo: {state!r}):\n" + self.logs())

    # ------------------------------------------------------------ use

    def run(self, cmd, *, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
        """A Slurm command against this cluster, bounded in time."""
        done = subprocess.run([which(cmd[0]) or cmd[0], *map(str, cmd[1:])],
                              env={**self.env, **kw.pop("env", {})},
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))}: status "
                                 f"{done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def job_state(self, job_id: str) -> str:
        """PENDING, RUNNING, COMPLETED, FAILED, ... (the job stays known to
        slurmctld for MinJobAge seconds after it ends)."""
        got = self.run(["scontrol", "show", "job", job_id], check=False)
        m = re.search(r"JobState=(\S+)", got.stdout)
        return m.group(1) if m else "UNKNOWN"

    def wait_job(self, job_id: str, timeout: float) -> str:
        """The job's final state, once it has ended; fails past `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING",
                             "SUSPENDED"):
                return state
            time.sleep(0.25)
        raise AssertionError(f"job {job_id} still {self.job_state(job_id)} after "
                             f"{timeout} s:\n{self.logs()}")

    @staticmethod
    def read(path: pathlib.Path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def logs(self, lines=25) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            tail = self.read(f).splitlines()[-lines:]
            parts.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # ------------------------------------------------------------ teardown

    def stop(self) -> None:
        """Cancel every job, stop the daemons, kill what they left. Never
        raises: it runs after failures too."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            try:
                self.run(["scancel", "--full", "--user", "root"], check=False, timeout=15)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    q = self.run(["squeue", "-h", "-o", "%i"], check=False, timeout=10)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.25)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.daemons.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=15)
            if name == "slurmd":
                self.kill_stepds()

    def kill_stepds(self) -> None:
        for pid in stepd_pids(self.spool):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node Slurm cluster (SlurmCluster); see the module."""
    if sys.platform != "linux":
        skip("the Slurm tests need Linux")
    install_packages()
    root = pathlib.Path(tempfile.mkdtemp(prefix="ms-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
