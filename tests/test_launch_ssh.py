"""--ssh (SPEC 14) against a real OpenSSH server that the tests start on a
private loopback port (tests/launchers.py): the output is exact, the
secret never shows in any command line, an unreachable host is reported
with its status while the run goes on, and no slave or ssh outlives the
master however it ends (normally, a runtime error, SIGINT, SIGTERM,
SIGKILL)."""
import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from harness import build_programs, clean_env, run_master
from launchers import (SQUARES, PsSampler, Sshd, assert_none_left,
                       ensure_openssh, total, wait_for_lines)

RUN_TIMEOUT = 60

PROGRAMS = {
    "squares": SQUARES,
    # A job prints; its slave is on the far side of ssh.
    "hello": """\
job int greet(int x) {
    print("hello from job " + str(x));
    return x + 1;
}

master {
    print(str(get(remote greet(41))));
}
""",
    # The master block fails at a runtime error while slaves run jobs.
    "fails": """\
job int slow(int x) {
    sleep(0.5);
    return x;
}

master {
    vector<job<int>> js;
    for (int i = 0; i < 8; i += 1) {
        js :: remote slow(i);
    }
    int first = get(js[0]);
    vector<int> none;
    print(str(none[first + 3]));
}
""",
}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    why = ensure_openssh()
    if why:
        pytest.skip(why)
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def progs(runtime_built, tmp_path_factory):
    return build_programs(tmp_path_factory.mktemp("launch_ssh"), PROGRAMS)


def ssh_env(sshd, **extra):
    return clean_env({"MS_SSH_COMMAND": sshd.ssh_command, **extra})


@pytest.mark.parametrize("given", [True, False], ids=["MS_TOKEN", "fresh"])
def test_two_hosts_exact_output_and_no_secret_on_any_command_line(
        sshd, progs, given):
    token = os.urandom(24).hex()
    env = ssh_env(sshd, **({"MS_TOKEN": token} if given else {}))
    with PsSampler() as ps:
        r = run_master(progs["squares"], "--ssh", "h1,h2", "--stats", "200",
                       timeout=RUN_TIMEOUT, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(200)
    assert "stats: 2 slaves joined" in r.stderr, r.stderr
    host = socket.gethostname()
    for h in ("h1", "h2"):
        assert f"started by ssh {h}, ran on {host}" in r.stderr, r.stderr
    slave = f"{progs['squares']}-slave"
    # The sampler saw the slaves and their ssh while they ran ...
    assert any(line.startswith(slave) and "--token-stdin" in line
               for line in ps.lines), [l for l in ps.lines if "squares" in l]
    assert any(line.startswith("ssh ") and slave in line for line in ps.lines)
    # ... and never a secret: neither the one given nor a fresh one (64
    # hex digits).
    for line in ps.lines:
        assert token not in line
        assert not re.search(r"[0-9a-fA-F]{64}", line), line


def test_a_host_listed_twice_gets_two_slaves(sshd, progs):
    r = run_master(progs["squares"], "--ssh", "h1", "--ssh", "h1", "--stats",
                   timeout=RUN_TIMEOUT, env=ssh_env(sshd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(40)
    assert r.stderr.count("started by ssh h1,") == 2, r.stderr


def test_user_at_host(sshd, progs):
    r = run_master(progs["squares"], "--ssh", "root@h2", "--stats",
                   timeout=RUN_TIMEOUT, env=ssh_env(sshd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(40)
    assert "started by ssh root@h2, ran on" in r.stderr, r.stderr


def test_what_the_remote_slave_writes_comes_back_on_stderr(sshd, progs):
    r = run_master(progs["hello"], "--ssh", "h2", timeout=RUN_TIMEOUT,
                   env=ssh_env(sshd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    assert "hello from job 41" in r.stderr


def test_slave_path_names_the_program_on_the_hosts(sshd, progs, tmp_path):
    other = tmp_path / "elsewhere" / "copy-slave"
    other.parent.mkdir()
    shutil.copy(f"{progs['squares']}-slave", other)
    with PsSampler() as ps:
        r = run_master(progs["squares"], "--ssh", "h1", "--slave-path", other,
                       timeout=RUN_TIMEOUT, env=ssh_env(sshd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(40)
    assert any(line.startswith(str(other)) for line in ps.lines), ps.lines


def test_an_unreachable_host_is_reported_and_the_run_goes_on(sshd, progs):
    r = run_master(progs["squares"], "--ssh", "h3,h1", "--stats",
                   timeout=RUN_TIMEOUT, env=ssh_env(sshd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == total(40)
    assert ("ssh slave on h3 ended early: ssh exited with status 255"
            in r.stderr), r.stderr
    assert "stats: 1 slave joined" in r.stderr


def test_no_reachable_host_fails_clearly_instead_of_hanging(sshd, progs):
    r = run_master(progs["squares"], "--ssh", "h3,h3", timeout=RUN_TIMEOUT,
                   env=ssh_env(sshd))
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert r.stderr.count("ssh slave on h3 ended early") == 2, r.stderr
    assert "error: no slave is left and none can come" in r.stderr


def test_a_remote_slave_that_exits_early_is_reported(sshd, progs, tmp_path):
    r = run_master(progs["squares"], "--ssh", "h1,h2", "--slave-path",
                   str(tmp_path / "no-such-slave"), timeout=RUN_TIMEOUT,
                   env=ssh_env(sshd))
    assert r.returncode == 1, r.stderr
    for h in ("h1", "h2"):
        assert f"ssh slave on {h} ended early: ssh exited with status 127" \
            in r.stderr, r.stderr


@pytest.mark.parametrize("end", ["normal", "runtime-error", "SIGINT",
                                 "SIGTERM", "SIGKILL", "Ctrl-C"])
def test_nothing_outlives_the_master(sshd, progs, end):
    name = "fails" if end == "runtime-error" else "squares"
    slave = f"{progs[name]}-slave"
    args = [f"{progs[name]}-master", "--ssh", "h1,h2"]
    if name == "squares":
        args.append("40" if end == "normal" else "2000")
    master = subprocess.Popen(args, env=ssh_env(sshd),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        # Both slaves run on the far side of ssh (their command lines hold
        # the slave's path, and so do their ssh's).
        wait_for_lines(master, slave, 4)
        if end.startswith("SIG"):
            master.send_signal(getattr(signal, end))
        elif end == "Ctrl-C":
            # A terminal's SIGINT goes to the master's whole process group;
            # ssh is in a group of its own, so the master ends the run in
            # order rather than seeing its ssh die first.
            os.killpg(master.pid, signal.SIGINT)
        out, err = master.communicate(timeout=RUN_TIMEOUT)
        want = {"normal": 0, "runtime-error": 1, "SIGINT": 130,
                "SIGTERM": 143, "SIGKILL": -9, "Ctrl-C": 130}[end]
        assert master.returncode == want, err
        if end == "Ctrl-C":
            assert b"ended early" not in err, err
        if end == "normal":
            assert out == total(40).encode()
        assert_none_left(slave, f"after the master's {end} end")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
