"""Shared pytest setup: the --update-golden flag and the fixtures. The plain
helpers (compiler, processes) are in tests/harness.py, the wire protocol in
tests/fakepeer.py; pytest puts tests/ on sys.path (rootdir conftest, no
__init__.py), so every test directory imports them by name."""
import subprocess

import pytest

from harness import REPO, Proc


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite golden expected files (.out, .err, .<pass>.ir) from "
             "actual output; review `git diff` before committing")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="session")
def runtime_built():
    """Build the runtime libraries once per test session."""
    subprocess.run(["make", "-s", "-C", str(REPO / "runtime" / "c"),
                    f"OUT={REPO / 'build'}"], check=True, timeout=300)
    return REPO / "build"


@pytest.fixture
def start():
    """start(cmd, **Proc options) -> Proc; whatever happens, every process
    started is killed (with its session) when the test ends."""
    started: list[Proc] = []

    def run(cmd, **kw):
        p = Proc(cmd, **kw)
        started.append(p)
        return p
    yield run
    for p in started:
        p.kill()
