"""Builds and runs tests/runtime/test_pool.c, the unit test of the
small-block allocator (runtime/c/pool.c): with the pool on (optimized, and
under ThreadSanitizer, which watches its cross-thread frees), and with it
off where it must be: under AddressSanitizer, under valgrind (found at run
time), and with MS_POOL=off. Off, the same checks hold with every block
malloc's."""
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RT = REPO / "runtime" / "c"
TEST_C = pathlib.Path(__file__).with_name("test_pool.c")
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-pthread", f"-I{RT}"]
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
SANITIZE = ["-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined"]

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def build(out, extra=()):
    cmd = [CC, *CFLAGS, *extra, "-o", str(out), str(TEST_C), str(RT / "pool.c")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


def run(cmd, expect_off=False, timeout=120, **env):
    given = env
    env = {**os.environ, **given}
    if "MS_POOL" not in given:
        env.pop("MS_POOL", None)
    if expect_off:
        env["MS_TEST_EXPECT_OFF"] = "1"
    else:
        env.pop("MS_TEST_EXPECT_OFF", None)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert r.stdout.endswith("pool tests passed\n"), r.stdout
    return r


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pool") / "test_pool", ["-O2"])


def test_pool_on(binary):
    r = run([str(binary)])
    assert "producer/consumer" in r.stderr


def test_pool_thread_sanitizer(tmp_path):
    out = build(tmp_path / "test_pool_tsan", ["-O1", "-fsanitize=thread"])
    # TSan's shadow does not fit under the out-of-memory test's limit.
    run([str(out)], MS_TEST_NO_RLIMIT="1", TSAN_OPTIONS="halt_on_error=1")


def test_pool_off_under_address_sanitizer(tmp_path):
    out = build(tmp_path / "test_pool_asan", ["-O1", *SANITIZE])
    run([str(out)], expect_off=True)


def test_pool_off_by_environment(binary):
    run([str(binary)], expect_off=True, MS_POOL="off")


def test_pool_off_when_preloaded_by_valgrind(binary):
    """Without valgrind.h, valgrind is found by its preload library: one
    named so (which does not exist: ld.so says so and goes on) is enough."""
    run([str(binary)], expect_off=True,
        LD_PRELOAD="/nonexistent/vgpreload_memcheck-amd64-linux.so")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="no valgrind")
def test_pool_off_under_valgrind(binary):
    r = run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
             "--errors-for-leak-kinds=definite", str(binary)],
            expect_off=True, timeout=300, MS_TEST_NO_RLIMIT="1")
    assert "Invalid read" not in r.stderr and "Invalid write" not in r.stderr
