"""Execute the book's chapters with papermill and build the HTML book with Jupyter Book.

Each chapter is a jupytext percent-format notebook ``book/<name>.py`` listed in
``_toc.yml``. ``build_book`` executes it with the parameters in
``params/<profile>/<name>.yaml`` into ``book/<name>.ipynb`` in TOC order, except that the
root page and pages whose parameters say ``reads_only: true`` (they read what the chapters
stored) run last, then builds ``_build/html`` without executing anything again.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from lrsc.errors import ConfigError


def project_root(start: str | Path = ".") -> Path:
    """The nearest folder at or above ``start`` that holds ``_toc.yml``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise ConfigError(f"no _toc.yml in {here} or above; run from the lrsc project folder or pass --root")


def resolve(path: str | Path) -> Path:
    """A path relative to the project root (so chapters run from any working folder)."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


def chapters(root: Path) -> list[str]:
    """Files named in ``_toc.yml`` that have a jupytext notebook beside them (``book/x`` for ``book/x.py``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in [toc] + toc.get("parts", []) for c in part.get("chapters", [])]
    return [f for f in files if (root / f"{f}.py").is_file()]


def _remove_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` so the page does not show it
    (the chapter's own ``parameters`` cell, with its comments, stays visible)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def execute_chapter(root: Path, chapter: str, parameters: dict) -> Path:
    """Run ``<chapter>.py`` through papermill with ``parameters``; returns the executed ``.ipynb``.

    The kernel runs in ``root``. The notebook is written to a temporary name and renamed
    into place only when every cell succeeded, so a failed run leaves the old one intact.
    """
    import jupytext
    import papermill

    nb = jupytext.read(root / f"{chapter}.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = root / f"{chapter}.ipynb"
    tmp = out.with_name(f".{out.name}.tmp.ipynb")
    try:
        papermill.execute_notebook(nb, str(tmp), parameters=parameters, kernel_name="python3", cwd=str(root),
                                   progress_bar=True)
        _remove_injected_parameters(tmp)
        os.replace(tmp, out)
    except papermill.PapermillExecutionError as e:
        raise ConfigError(f"chapter {chapter} failed in cell {e.exec_count}: {e.ename}: {e.evalue} "
                          f"(the executed notebook is {tmp})") from None
    return out


def build_book(root: str | Path = ".", profile: str = "quick", execute: bool = True) -> Path:
    """Execute every chapter with ``params/<profile>/`` and build the HTML; returns ``_build/html``."""
    root = project_root(root)
    names = chapters(root)
    params_dir = root / "params" / profile
    missing = [c for c in names if not (params_dir / f"{Path(c).name}.yaml").is_file()]
    if not params_dir.is_dir() or missing:
        profiles = sorted(p.name for p in (root / "params").iterdir() if p.is_dir())
        raise ConfigError(f"profile {profile!r} lacks parameter files for {', '.join(missing) or 'every chapter'} "
                          f"in {params_dir}; available profiles: {', '.join(profiles)}")
    if execute:
        # Pages that only read what the chapters stored run after all of them, in TOC order:
        # the root page and every page whose parameters say `reads_only: true` (a key for
        # this ordering alone, not passed to the notebook).
        root_page = yaml.safe_load((root / "_toc.yml").read_text())["root"]
        all_params = {c: yaml.safe_load((params_dir / f"{Path(c).name}.yaml").read_text()) or {} for c in names}
        for chapter in sorted(names, key=lambda c: c == root_page or bool(all_params[c].get("reads_only"))):
            params = {k: v for k, v in all_params[chapter].items() if k != "reads_only"}
            print(f"executing {chapter} with params/{profile}/{Path(chapter).name}.yaml", flush=True)
            execute_chapter(root, chapter, params)
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "build", str(root), "--builder", "html"], check=True)
    html = root / "_build" / "html"
    print(f"book written to {html / 'index.html'}")
    return html
