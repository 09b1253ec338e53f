"""M/s under a real Slurm (SPEC 14, issue 12): slaves started through
`srun` join a master and the run's output is exact; the example sbatch
script (examples/slurm/) runs a program on 3 tasks with `--srun`. The
cluster is tests/slurm_cluster.py's, started for this module and torn down
after it; nothing of a run may be left behind."""
from __future__ import annotations

import re
import secrets
import subprocess

import pytest

from harness import REPO, Proc, build_program, build_programs
from launchers import assert_none_left
from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)

SBATCH_SCRIPT = REPO / "examples" / "slurm" / "ms.sbatch"
TASKS = 3
CHUNK = 1000
JOBS = 30

# Waits (a bounded time) for all TASKS slaves before it starts, so that no
# slave started by srun comes after the run has ended and waits forever.
SQUARES = f"""\
job int square_sum(int lo, int hi) {{
    int s = 0;
    for (int i = lo; i < hi; i += 1) s += i * i;
    return s;
}}

master {{
    int waited = 0;
    while (slaves() < {TASKS} && waited < 600) {{
        sleep(0.05);
        waited += 1;
    }}
    print("slaves " + str(slaves()));
    vector<job<int>> jobs;
    for (int k = 0; k < {JOBS}; k += 1) {{
        jobs :: remote square_sum(k * {CHUNK}, (k + 1) * {CHUNK});
    }}
    int total = 0;
    for (int i = 0; i < len(jobs); i += 1) total += get(jobs[i]);
    print(str(len(jobs)) + " jobs: " + str(total));
}}
"""
SQUARES_OUT = (f"slaves {TASKS}\n"
               f"{JOBS} jobs: {sum(i * i for i in range(JOBS * CHUNK))}\n")


@pytest.fixture(scope="module")
def squares(tmp_path_factory, runtime_built):
    return build_programs(tmp_path_factory.mktemp("slurm-prog"),
                          {"squares": SQUARES})["squares"]


def overcommit(cluster) -> list[str]:
    """More tasks than the node has CPUs need --overcommit (a 2-CPU
    machine runs the 3 tasks all the same)."""
    return ["--overcommit"] if cluster.cpus < TASKS else []


def test_slaves_started_by_srun_join_a_master(slurm_cluster, squares):
    """`srun -n 3 NAME-slave --master HOST:PORT` with MS_TOKEN exported (srun
    passes the environment on): the three slaves join, the master's stdout
    is exact, and the step and every slave end with the master."""
    token = secrets.token_hex(32)
    master = Proc([f"{squares}-master", "--listen", "127.0.0.1:0", "--stats"],
                  env={"MS_TOKEN": token})
    try:
        addr = master.wait_err(r"listening on (\S+)", timeout=20).group(1)
        srun = slurm_cluster.run(
            ["srun", "-n", TASKS, *overcommit(slurm_cluster), "--time=5",
             f"{squares}-slave", "--master", addr, "--threads", "1"],
            env={"MS_TOKEN": token}, check=False, timeout=120)
        assert master.finish(timeout=30) == 0, master.err
    finally:
        master.kill()
    assert srun.returncode == 0, srun.stdout + srun.stderr
    assert master.out == SQUARES_OUT
    assert f"stats: {TASKS} slaves joined, 0 lost" in master.err
    assert_none_left(f"{squares}-slave", "the slaves srun started")


def test_a_wrong_secret_through_srun_is_refused(slurm_cluster, squares):
    """Slaves given another secret never join: the master refuses them and
    says so, and scancel ends the step."""
    master = Proc([f"{squares}-master", "--listen", "127.0.0.1:0"],
                  env={"MS_TOKEN": secrets.token_hex(32)})
    srun = None
    try:
        addr = master.wait_err(r"listening on (\S+)", timeout=20).group(1)
        srun = subprocess.Popen(
            ["srun", "-n", "1", "--job-name=ms-wrong-secret", "--time=2",
             f"{squares}-slave", "--master", addr],
            env={**slurm_cluster.env, "MS_TOKEN": secrets.token_hex(32)},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        master.wait_err(r"refused slave .*: authentication failed", timeout=30)
        assert "slaves 1" not in master.out
    finally:
        slurm_cluster.run(["scancel", "--name=ms-wrong-secret"], check=False)
        if srun is not None:
            try:
                srun.wait(timeout=30)
            except subprocess.TimeoutExpired:
                srun.kill()
                srun.wait()
        master.kill()
    assert_none_left(f"{squares}-slave", "the slaves srun started")


def test_the_example_sbatch_script_runs_a_program_on_3_tasks(
        slurm_cluster, tmp_path, runtime_built):
    """examples/slurm/ms.sbatch, submitted as the docs say (with --stats for
    the master): the job ends COMPLETED, its output file is exactly what the
    master printed, the 3 slaves were started by srun, and no slave process
    remains."""
    prog = build_program(REPO / "examples" / "demo.ms", tmp_path / "demo")
    out = tmp_path / "demo.out"
    submitted = slurm_cluster.run(
        ["sbatch", "--parsable", *overcommit(slurm_cluster),
         f"--chdir={tmp_path}", f"--output={tmp_path}/slurm-%j.log",
         SBATCH_SCRIPT, prog, out, "--stats"])
    job_id = submitted.stdout.strip().split(";")[0]
    state = slurm_cluster.wait_job(job_id, timeout=180)
    log = slurm_cluster.read(tmp_path / f"slurm-{job_id}.log")
    assert state == "COMPLETED", f"job {job_id} {state}:\n{log}"
    assert out.read_text() == ("40 jobs on the slaves found 148933 primes "
                               "below 2000000\nfinished\n"), log
    assert f"stats: {TASKS} slaves joined, 0 lost" in log, log
    assert len(re.findall(r"^\S+: stats: slave \d+ .*\bsrun\b", log, re.M)) == TASKS, log
    assert_none_left(f"{prog}-slave", "the slaves of the sbatch job")
    assert_none_left(f"{prog}-master", "the master of the sbatch job")
