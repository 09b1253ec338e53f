"""M/s compiler: parses .ms programs, runs the nanopass pipeline, emits LLVM."""


def version() -> str:
    """The compiler's version: the installed package's, else (a source
    checkout run in place) pyproject.toml's beside this package."""
    import importlib.metadata
    import pathlib
    import tomllib
    try:
        return importlib.metadata.version("ms-lang")
    except importlib.metadata.PackageNotFoundError:
        pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]
