"""The compiler's version and the wire protocol's version, for `msc --version`
and the `msc run` cache key.

Each has one source of truth: the compiler's version is pyproject.toml's
`version` (read from the file in a source checkout, so an edit counts at
once; from the installed package's metadata otherwise), and the protocol
version is the runtime's `#define MS_PROTOCOL_VERSION` (runtime/c in a
source checkout, compiler/runtime_src when installed).
"""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent          # compiler/
REPO = PACKAGE.parent

_PROTOCOL_DEFINE = re.compile(rb"^\s*#\s*define\s+MS_PROTOCOL_VERSION\s+(\d+)u?\b",
                              re.MULTILINE)


class VersionError(Exception):
    """A version that cannot be found: reported as `msc: error: ...`."""


def compiler_version() -> str:
    pyproject = REPO / "pyproject.toml"
    if pyproject.is_file():
        try:
            with open(pyproject, "rb") as f:
                project = tomllib.load(f).get("project", {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise VersionError(f"cannot read {pyproject}: {e}") from None
        if project.get("name") == "ms-lang" and "version" in project:
            return str(project["version"])
    try:
        return metadata.version("ms-lang")
    except metadata.PackageNotFoundError:
        raise VersionError("cannot find the compiler's version: neither "
                           "pyproject.toml nor an installed ms-lang "
                           "package") from None


def runtime_sources() -> Path | None:
    """The runtime's C sources: runtime/c of a source checkout, else the
    copy an installed package carries."""
    for directory in (REPO / "runtime" / "c", PACKAGE / "runtime_src"):
        if (directory / "Makefile").is_file():
            return directory
    return None


def protocol_version() -> int:
    src = runtime_sources()
    if src is None:
        raise VersionError("cannot find the runtime's sources to read the "
                           "protocol version from")
    for header in sorted(src.glob("*.h")):
        try:
            found = _PROTOCOL_DEFINE.search(header.read_bytes())
        except OSError as e:
            raise VersionError(f"cannot read {header}: {e.strerror}") from None
        if found:
            return int(found.group(1))
    raise VersionError(f"no MS_PROTOCOL_VERSION in the headers of {src}")
