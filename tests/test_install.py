"""An installed msc (pip install, no source checkout) builds and finds the
runtime itself: SPEC section 8's `msc` works from anywhere."""
import os
import subprocess
import sys

from harness import REPO, run_bounded


def test_installed_compiler_builds_its_runtime(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(site), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    assert (site / "compiler" / "runtime_src" / "ms_abi.h").exists()
    work = tmp_path / "work"
    work.mkdir()
    (work / "gcd.ms").write_text((REPO / "examples" / "gcd.ms").read_text())
    env = {k: v for k, v in os.environ.items() if k != "MS_RUNTIME_DIR"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    built = subprocess.run([sys.executable, "-m", "compiler", "gcd.ms"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    import compiler
    assert str(site) not in compiler.__file__  # the test itself uses the checkout
    run = run_bounded([str(work / "gcd-master")], timeout=60)
    assert run.returncode == 0 and run.stdout == "21\n1\n"
    assert any((tmp_path / "cache").rglob("libmsmaster.a"))
