"""--srun (SPEC 14) through a stand-in for Slurm's srun (MS_SRUN_COMMAND):
a shell script that runs its command once per task of the "allocation"
(SLURM_NTASKS copies, each with its SLURM_PROCID) and records the command
line and environment it was given. The real Slurm daemons are another
test's; this one checks what the master asks of srun: one slave per task
with the task's CPUs as threads, the secret in the environment and never
on the command line, --stats naming each task, and nothing left when the
master is killed."""
import os
import signal
import socket
import subprocess

import pytest

from harness import build_programs, clean_env, run_master
from launchers import SQUARES, assert_none_left, total, wait_for_lines

RUN_TIMEOUT = 60

FAKE_SRUN = """\
#!/bin/sh
# Stand-in for srun: record argv and environment, then run the command
# once per task (SLURM_NTASKS), each with its SLURM_PROCID.
printf '%s\\n' "$@" > "$RECORD.argv"
env > "$RECORD.env"
i=0
while [ "$i" -lt "${SLURM_NTASKS:-1}" ]; do
    SLURM_PROCID=$i "$@" &
    i=$((i + 1))
done
wait
"""


@pytest.fixture(scope="module")
def progs(runtime_built, tmp_path_factory):
    return build_programs(tmp_path_factory.mktemp("launch_srun"),
                          {"squares": SQUARES})


@pytest.fixture
def srun(tmp_path):
    path = tmp_path / "fake-srun"
    path.write_text(FAKE_SRUN)
    path.chmod(0o755)
    record = tmp_path / "record"

    def env(**extra):
        return clean_env({"MS_SRUN_COMMAND": str(path), "RECORD": str(record),
                          "SLURM_JOB_ID": "77", "SLURM_NTASKS": "3",
                          "SLURM_CPUS_PER_TASK": "2", **extra})
    env.record = record
    return env


def test_srun_outside_an_allocation_is_a_usage_error(progs):
    r = run_master(progs["squares"], "--srun", timeout=RUN_TIMEOUT,
                   env=clean_env())
    assert r.returncode == 2
    assert "--srun works only inside a Slurm allocation" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("given", [True, False], ids=["MS_TOKEN", "fresh"])
def test_one_slave_per_task_with_its_cpus_and_the_secret_in_the_environment(
        progs, srun, given):
    token = os.urandom(16).hex()
    env = srun(**({"MS_TOKEN": token} if given else {}))
    r = run_master(progs["squares"], "--srun", "--stats", timeout=RUN_TIMEOUT,
                   env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(40)
    assert "stats: 3 slaves joined" in r.stderr, r.stderr
    for task in range(3):
        assert f"started by srun, task {task}, ran on" in r.stderr, r.stderr
    assert r.stderr.count("remote, 2 threads)") == 3, r.stderr
    argv = (srun.record.with_suffix(".argv")).read_text().split("\n")
    assert argv[0] == f"{progs['squares']}-slave"
    assert argv[argv.index("--threads") + 1] == "2"
    environ = dict(line.split("=", 1) for line in
                   srun.record.with_suffix(".env").read_text().splitlines()
                   if "=" in line)
    secret = environ["MS_TOKEN"]
    if given:
        assert secret == token
    else:
        assert len(secret) == 64
    assert not any(secret in word for word in argv)


def test_nothing_outlives_a_master_killed_with_sigkill(progs, srun):
    slave = f"{progs['squares']}-slave"
    master = subprocess.Popen([f"{progs['squares']}-master", "--srun", "2000"],
                              env=srun(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_lines(master, slave, 3)
        master.send_signal(signal.SIGKILL)
        master.wait(RUN_TIMEOUT)
        assert_none_left(slave, "after the master's SIGKILL")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()


def test_a_launched_slave_whose_master_is_gone_before_it_connects_exits(progs):
    """A master listens before it launches: a slave it launched (with
    --launch-tag) that finds nobody listening does not wait for ever, as a
    slave started by hand does; its master was killed before it got
    there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [f"{progs['squares']}-slave", "--master", f"127.0.0.1:{port}",
           "--launch-tag", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                          env=clean_env({"MS_TOKEN": "x"}))
    assert done.returncode == 1
    assert ("refuses connections: the master that started this slave is "
            "gone; exiting") in done.stderr
