"""`msc run prog.ms [MASTER-ARGS]` and `msc --version` (compiler/runcache.py,
compiler/driver.py): the cache, its key, its safety, and what reaches the
master."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from compiler import runcache
from compiler.driver import split_run_args
from harness import REPO, kill_group, msc, run_bounded

GCD = (REPO / "examples" / "gcd.ms").read_text()
ENDLESS = (REPO / "tests" / "faults" / "endless.ms").read_text()
DIV_ZERO = """// a runtime error in the master
master {
    int a = 0;
    print(1);
    print(1 / a);
}
"""


def _env(cache):
    return {**os.environ, "PYTHONPATH": str(REPO),
            "XDG_CACHE_HOME": str(cache)}


def msc_run(cache, cwd, *args, timeout=120):
    """`msc run ARGS` with its own cache; no process may outlive it."""
    return run_bounded([sys.executable, "-m", "compiler", "run",
                        *map(str, args)], timeout=timeout, cwd=cwd,
                       env=_env(cache))


def entries(cache):
    root = Path(cache) / "ms-lang" / "run"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) \
        if root.is_dir() else []


def run_line(result):
    """(what, entry) from the -v line: compiled, cache hit, or rebuilt."""
    found = re.search(r"^msc: run: (.*): (\S+)$", result.stderr, re.M)
    assert found, result.stderr
    return found.group(1), Path(found.group(2))


@pytest.fixture
def prog(tmp_path):
    (tmp_path / "gcd.ms").write_text(GCD)
    return tmp_path


def test_run_compiles_then_runs_from_the_cache(prog, runtime_built):
    cache = prog / "cache"
    first = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "21\n1\n"
    what, entry = run_line(first)
    assert what == "compiled"
    assert entry.parent == cache / "ms-lang" / "run"
    master = entry / "gcd-master"
    before = master.stat()
    second = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "21\n1\n"
    assert run_line(second) == ("cache hit", entry)
    after = master.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino,
                                                before.st_mtime_ns)
    assert entries(cache) == [entry]
    assert not list(prog.glob("gcd-*")), "run writes nothing beside the source"


def test_runtime_error_and_master_usage_error_exit_statuses(tmp_path,
                                                            runtime_built):
    (tmp_path / "div.ms").write_text(DIV_ZERO)
    result = msc_run(tmp_path / "cache", tmp_path, "div.ms", "--spawn", "0")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "1\n"
    assert "div.ms:5:13: runtime error: division by zero" in result.stderr
    result = msc_run(tmp_path / "cache", tmp_path, "div.ms", "--spawn", "x")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""


def test_runtime_options_reach_the_master(prog, runtime_built):
    result = msc_run(prog / "cache", prog, "gcd.ms", "--spawn", "1",
                     "--stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "21\n1\n"
    assert re.search(r"stats: 1 slave joined", result.stderr), result.stderr


def test_msc_options_come_before_the_source_and_change_the_key(
        prog, runtime_built):
    cache = prog / "cache"
    o0 = msc_run(cache, prog, "-O0", "-v", "gcd.ms", "--spawn", "1")
    o2 = msc_run(cache, prog, "--verbose", "gcd.ms", "--spawn", "1")
    assert (o0.returncode, o2.returncode) == (0, 0), o0.stderr + o2.stderr
    assert o0.stdout == o2.stdout == "21\n1\n"
    assert run_line(o0)[1] != run_line(o2)[1]
    assert len(entries(cache)) == 2


def test_compile_error_runs_nothing(tmp_path, runtime_built):
    (tmp_path / "bad.ms").write_text("master {\n  print(nope);\n}\n")
    result = msc_run(tmp_path / "cache", tmp_path, "bad.ms", "--spawn", "1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("bad.ms:2:9: error:"), result.stderr
    assert "  print(nope);\n" in result.stderr
    assert entries(tmp_path / "cache") == []


def test_changed_source_recompiles(prog, runtime_built):
    cache = prog / "cache"
    first = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    (prog / "gcd.ms").write_text(GCD.replace("print(get(j2));",
                                             "print(get(j2) + 1);"))
    second = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "21\n2\n"
    assert run_line(second)[0] == "compiled"
    assert run_line(first)[1] != run_line(second)[1]


def test_concurrent_runs_of_one_program_both_succeed(prog, runtime_built):
    cache = prog / "cache"
    results = [None, None]

    def one(i):
        results[i] = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r.returncode == 0, r.stderr
        assert r.stdout == "21\n1\n"
    assert run_line(results[0])[1] == run_line(results[1])[1]
    assert len(entries(cache)) == 1
    root = cache / "ms-lang" / "run"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("damage", ["truncated", "no-manifest", "no-slave"])
def test_broken_cache_entry_is_rebuilt(prog, runtime_built, damage):
    cache = prog / "cache"
    first = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    entry = run_line(first)[1]
    if damage == "truncated":
        master = entry / "gcd-master"
        master.write_bytes(master.read_bytes()[:4096])
    elif damage == "no-manifest":
        (entry / runcache.MANIFEST).unlink()
    else:
        (entry / "gcd-slave").unlink()
    second = msc_run(cache, prog, "-v", "gcd.ms", "--spawn", "1")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "21\n1\n"
    assert run_line(second) == ("rebuilt a broken entry", entry)
    assert runcache.entry_valid(entry, "gcd")


def test_signal_to_msc_run_reaches_the_master(tmp_path, runtime_built):
    """msc run becomes the master (exec): SIGTERM to its pid is the
    master's, which stops its slaves and exits 128+15."""
    (tmp_path / "endless.ms").write_text(ENDLESS)
    cmd = [sys.executable, "-m", "compiler", "run", "-v", "endless.ms",
           "--spawn", "1", "--verbose"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr))
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("joined" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.05)
        exe = os.readlink(f"/proc/{proc.pid}/exe")
        assert exe.endswith("/endless-master"), exe
        assert exe.startswith(str(tmp_path / "cache" / "ms-lang" / "run"))
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        kill_group(proc)
        reader.join()
    assert any("stopped by signal 15" in line for line in lines), lines


def test_run_usage_errors(tmp_path):
    result = msc("run", cwd=tmp_path)
    assert result.returncode == 2 and "no input file" in result.stderr
    result = msc("run", "-o", "x", "p.ms", cwd=tmp_path)
    assert result.returncode == 2 and "msc: error:" in result.stderr
    result = msc("run", "-v", cwd=tmp_path)
    assert result.returncode == 2 and "no input file" in result.stderr
    result = msc("run", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "MASTER-ARGS" in result.stdout
    result = msc("run", "missing.ms", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read missing.ms" in result.stderr


def test_a_file_named_run_compiles_as_dot_slash_run(tmp_path,
                                                    runtime_built):
    (tmp_path / "run").write_text(GCD)
    result = msc("./run", "-o", "g", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g-master").exists()


# ------------------------------------------------------ unit tests

def test_everything_after_the_source_goes_to_the_master_verbatim():
    own, source, rest = split_run_args(
        ["-O0", "-v", "p.ms", "--spawn", "2", "data.txt", "--", "-O3", "-v"])
    assert (own, source) == (["-O0", "-v"], "p.ms")
    assert runcache.master_command(Path("/c/k"), "p", rest) == [
        "/c/k/p-master", "--spawn", "2", "data.txt", "--", "-O3", "-v"]
    assert split_run_args(["-v"]) == (["-v"], None, [])


def test_program_name_and_key_fields(tmp_path):
    assert runcache.program_name("dir/prog.ms") == "prog"
    assert runcache.program_name("dir/prog") == "prog"
    runtime = tmp_path / "rt"
    runtime.mkdir()
    for name in runcache.RUNTIME_FILES:
        (runtime / name).write_bytes(b"v1 " + name.encode())
    base = runcache.cache_key("p.ms", b"master {}", 2, str(runtime))
    assert base == runcache.cache_key("p.ms", b"master {}", 2, str(runtime))
    others = {runcache.cache_key("q.ms", b"master {}", 2, str(runtime)),
              runcache.cache_key("p.ms", b"master { }", 2, str(runtime)),
              runcache.cache_key("p.ms", b"master {}", 3, str(runtime))}
    (runtime / "libmsslave.a").write_bytes(b"v2")
    others.add(runcache.cache_key("p.ms", b"master {}", 2, str(runtime)))
    assert base not in others and len(others) == 4


def test_compiler_digest_covers_every_compiler_file(tmp_path):
    pkg = tmp_path / "compiler"
    (pkg / "passes").mkdir(parents=True)
    (pkg / "passes" / "a.py").write_text("x = 1\n")
    (pkg / "grammar.peg").write_text("g\n")
    base = runcache.compiler_digest(pkg)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert runcache.compiler_digest(pkg) == base
    (pkg / "passes" / "a.py").write_text("x = 2\n")
    assert runcache.compiler_digest(pkg) != base


def test_prune_keeps_the_most_recently_used_and_drops_stale_temporaries(
        tmp_path):
    now = time.time()
    for i in range(5):
        (tmp_path / f"e{i}").mkdir()
        os.utime(tmp_path / f"e{i}", (now - 100 * i, now - 100 * i))
    for name, age in ((".tmp-old", 2 * runcache.STALE_SECONDS),
                      (".tmp-new", 10)):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (now - age, now - age))
    runcache.prune(tmp_path, keep=2, now=now)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".tmp-new", "e0", "e1"]


def test_version_names_pyproject_and_the_protocol(tmp_path):
    with open(REPO / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    headers = "".join(h.read_text()
                      for h in (REPO / "runtime" / "c").glob("*.h"))
    protocol = re.search(r"#define MS_PROTOCOL_VERSION (\d+)", headers)[1]
    result = msc("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"msc {version}\nprotocol {protocol}\n"
