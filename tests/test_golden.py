"""Golden-file tests: every tests/golden/**/NAME.ms beside its expectations.

- NAME.<pass>.ir   the IR dump after <pass> (`--dump-after=<pass>`)
- fail-NAME.err    the compile diagnostic (the program must be rejected)
- NAME.out         the master's stdout when the program runs on local slaves
- NAME.err         (not fail-) the runtime error lines of the master's stderr;
                   the program must then exit with status 1
- NAME.stderr      (optional) the master's whole stderr, for programs that
                   `eprint` and whose jobs print nothing unordered (what a
                   local slave writes reaches the master's stderr too);
                   --update-golden rewrites it only where it exists

A run's inputs (SPEC 12.1, 12.2), each optional, beside NAME.ms:
- NAME.args        the master's command line after its name, one argument a
                   line (runtime options and the program's arguments alike:
                   `--spawn`, `2`, `data.txt`, `-v`); an empty line is an
                   empty argument
- NAME.stdin       the master's standard input (else /dev/null)
- NAME.files/      copied into the run's working directory. Every program
                   runs in a fresh empty directory of its own (this copy, or
                   nothing), so it may write files; its executables are not
                   in it.

Programs compile with cwd = their directory and are named relatively, so
messages read `NAME.ms:LINE:COL: ...` with no machine paths. Run
`pytest tests/test_golden.py --update-golden [-k NAME]` to rewrite expected
files from actual output, then read `git diff` before committing.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from harness import REPO, build_program, msc, run_bounded

GOLDEN = REPO / "tests" / "golden"
RUN_TIMEOUT = 60


def golden_programs():
    return sorted(GOLDEN.rglob("*.ms"))


def case_id(path: pathlib.Path) -> str:
    return str(path.relative_to(GOLDEN).with_suffix(""))


def ir_cases():
    for ms in golden_programs():
        for ir in sorted(ms.parent.glob(ms.stem + ".*.ir")):
            pass_name = ir.name[len(ms.stem) + 1:-len(".ir")]
            yield pytest.param(ms, pass_name, ir,
                               id=f"{case_id(ms)}@{pass_name}")


def fail_cases():
    for ms in golden_programs():
        if ms.stem.startswith("fail-"):
            yield pytest.param(ms, id=case_id(ms))


def run_cases():
    for ms in golden_programs():
        if not ms.stem.startswith("fail-") and ms.with_suffix(".out").exists():
            yield pytest.param(ms, id=case_id(ms))


def check_or_update(expected: pathlib.Path, actual: str, update: bool):
    if update:
        if not expected.exists() or expected.read_text() != actual:
            expected.write_text(actual)
        return
    assert expected.exists(), f"missing {expected.name}; run with --update-golden"
    assert actual == expected.read_text(), f"{expected.name} differs"


@pytest.mark.parametrize("ms,pass_name,ir", list(ir_cases()))
def test_ir_dump(ms, pass_name, ir, update_golden):
    result = msc(ms.name, f"--dump-after={pass_name}", cwd=ms.parent)
    assert result.returncode == 0, result.stderr
    check_or_update(ir, result.stdout, update_golden)


@pytest.mark.parametrize("ms", list(fail_cases()))
def test_compile_error(ms, update_golden, tmp_path):
    result = msc(ms.name, "-o", tmp_path / ms.stem, cwd=ms.parent)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.returncode == 1, f"expected a compile error: {result.stderr}"
    check_or_update(ms.with_suffix(".err"), result.stderr, update_golden)


RUNTIME_ERROR = re.compile(r": runtime error: ")

# MS_MEMCHECK=1 (`make memcheck`): the master and its local slaves run under
# valgrind, and any definite leak, invalid access or use of uninitialised
# memory in their logs fails the run.
MEMCHECK = os.environ.get("MS_MEMCHECK") == "1"
VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
            "--track-origins=yes"]
VALGRIND_FINDINGS = re.compile(
    r"definitely lost: [1-9][\d,]* bytes|Invalid read|Invalid write|"
    r"uninitialised|Invalid free|Mismatched free")


def memchecked(cmd, tmp_path):
    """`cmd` under valgrind, and the environment that wraps local slaves."""
    if not shutil.which("valgrind"):
        pytest.skip("MS_MEMCHECK=1 but valgrind is not installed")
    env = {**os.environ, "MS_SLAVE_WRAPPER": " ".join(
        [*VALGRIND, f"--log-file={tmp_path}/slave.%p.valgrind"])}
    return [*VALGRIND, f"--log-file={tmp_path}/master.%p.valgrind", *cmd], env


def check_valgrind_logs(tmp_path):
    logs = sorted(tmp_path.glob("*.valgrind"))
    assert any(log.name.startswith("master.") for log in logs), "no master log"
    for log in logs:
        text = log.read_text(errors="replace")
        found = VALGRIND_FINDINGS.search(text)
        assert not found, f"valgrind: {found.group(0)} in {log}:\n{text}"


def run_inputs(ms: pathlib.Path, tmp_path: pathlib.Path):
    """(arguments, stdin text or None, working directory) of a golden run,
    from NAME.args, NAME.stdin and NAME.files/ (the module docstring)."""
    args_file, stdin_file = ms.with_suffix(".args"), ms.with_suffix(".stdin")
    args = (args_file.read_text().split("\n")[:-1]
            if args_file.exists() else [])
    stdin = stdin_file.read_text() if stdin_file.exists() else None
    cwd = tmp_path / "cwd"
    files = ms.with_suffix(".files")
    if files.is_dir():
        shutil.copytree(files, cwd, symlinks=True)
    else:
        cwd.mkdir()
    return args, stdin, cwd


@pytest.mark.parametrize("ms", list(run_cases()))
def test_run(ms, update_golden, tmp_path, runtime_built):
    exe = build_program(ms, tmp_path / ms.stem)
    args, stdin, cwd = run_inputs(ms, tmp_path)
    cmd, env, timeout = [f"{exe}-master", *args], None, RUN_TIMEOUT
    if MEMCHECK:
        cmd, env = memchecked(cmd, tmp_path)
        timeout = 5 * RUN_TIMEOUT
    try:
        run = run_bounded(cmd, cwd=cwd, timeout=timeout, env=env,
                          input=stdin)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{ms.name} did not finish within {timeout}s")
    if MEMCHECK:
        check_valgrind_logs(tmp_path)
    err_lines = "".join(line for line in run.stderr.splitlines(keepends=True)
                        if RUNTIME_ERROR.search(line))
    expected_err = ms.with_suffix(".err")
    expects_error = expected_err.exists() or (update_golden and err_lines)
    check_or_update(ms.with_suffix(".out"), run.stdout, update_golden)
    if ms.with_suffix(".stderr").exists() and not MEMCHECK:
        check_or_update(ms.with_suffix(".stderr"), run.stderr, update_golden)
    if expects_error:
        check_or_update(expected_err, err_lines, update_golden)
        assert run.returncode == 1, run.stderr
    else:
        assert run.returncode == 0, run.stderr
