"""Packaging hook: ship the C runtime's sources inside the compiler package.

An installed `msc` (pip install .) has no source checkout to build the
runtime from, so the wheel carries runtime/c as compiler/runtime_src, and
compiler/codegen/backend.py builds it once into a per-user cache on first use.
"""
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

RUNTIME = pathlib.Path(__file__).parent / "runtime" / "c"


class BuildPyWithRuntime(build_py):
    def run(self):
        super().run()
        target = pathlib.Path(self.build_lib) / "compiler" / "runtime_src"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for src in RUNTIME.iterdir():
            if src.suffix in (".c", ".h") or src.name == "Makefile":
                shutil.copy2(src, target / src.name)


setup(cmdclass={"build_py": BuildPyWithRuntime})
