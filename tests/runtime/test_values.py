"""Builds and runs tests/runtime/test_values.c, the unit test of the value
runtime (runtime/c/values.c, strings.c, codec.c, and maps.c, hash.c and
pool.c which they call): plainly, under ASan and
UBSan, under valgrind (no invalid reads or writes, no definitely-lost
bytes; the tracking tests free a failed job's vectors, so leaks there show
up here), and linked against the real runtime library when it is built."""
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RT = REPO / "runtime" / "c"
TEST_C = pathlib.Path(__file__).with_name("test_values.c")
SOURCES = [RT / "values.c", RT / "strings.c", RT / "codec.c", RT / "maps.c",
           RT / "hash.c", RT / "pool.c"]
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-pthread", f"-I{RT}"]
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def build(out, extra=(), libs=(), sources=SOURCES):
    cmd = [CC, *CFLAGS, *extra, "-o", str(out), str(TEST_C),
           *map(str, sources), *libs, "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


def run(cmd, binary, timeout=60, deep=None):
    env = {**os.environ, "MS_TEST_SELF": str(binary)}
    if deep is not None:
        env["MS_TEST_DEEP"] = str(deep)  # the small-stack walks' depth
    env.pop("MS_TEST_CASE", None)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "all value runtime tests passed" in r.stdout
    return r


@pytest.fixture(scope="module")
def stub_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("values") / "test_values"
    return build(out, ["-O1", "-DMS_TEST_LOCAL_STUBS"])


def test_values_unit(stub_binary):
    run([str(stub_binary)], stub_binary)


def test_values_untracked_build(tmp_path):
    """values.c as the master's library builds it (MS_VALUES_UNTRACKED: no
    node in front of a vector), every test but tracking's, under ASan and
    UBSan."""
    out = tmp_path / "test_values_untracked"
    build(out, ["-O1", "-DMS_TEST_LOCAL_STUBS", "-DMS_VALUES_UNTRACKED",
                "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                "-fno-sanitize-recover=undefined"])
    run([str(out)], out)


def test_values_sanitizers(tmp_path):
    out = tmp_path / "test_values_asan"
    build(out, ["-O1", "-DMS_TEST_LOCAL_STUBS", "-fno-omit-frame-pointer",
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=undefined"])
    run([str(out)], out)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="no valgrind")
def test_values_valgrind(stub_binary):
    r = run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--child-silent-after-fork=yes",
             str(stub_binary)], stub_binary, timeout=120, deep=100000)
    assert "definitely lost" not in r.stderr
    assert "Invalid read" not in r.stderr and "Invalid write" not in r.stderr


def test_values_with_runtime_library(tmp_path, runtime_built):
    """The same checks linked with the real libmsmaster.a: the library's
    main() runs the tests as the master block, and runtime errors take the
    master's real path (message, exit status 1). Its values.c is the
    untracked build, so the tracking tests are left out."""
    lib = runtime_built / "libmsmaster.a"
    flags = (runtime_built / "ms-link-flags").read_text().split()
    out = tmp_path / "test_values_lib"
    build(out, ["-O1", "-DMS_VALUES_UNTRACKED"], [str(lib), *flags], sources=())
    run([str(out), "--spawn", "0"], out)
