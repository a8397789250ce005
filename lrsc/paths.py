"""Where the project is: its root folder, and paths given relative to it from any working folder."""
from __future__ import annotations

from pathlib import Path

from lrsc.errors import ConfigError


def project_root(start: str | Path = ".") -> Path:
    """The nearest folder at or above ``start`` that holds ``_toc.yml``, else the lrsc checkout's own."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    source = Path(__file__).resolve().parents[1]
    if (source / "_toc.yml").is_file():
        return source
    raise ConfigError(f"no _toc.yml in {here} or above; run from the lrsc project folder or pass --root")


def resolve(path: str | Path) -> Path:
    """A path as given when it exists from here, else relative to the project root (so chapters and
    notebooks name parameter files the same way from any working folder)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    return project_root() / path
