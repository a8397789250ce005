"""Execute the book's chapters with papermill and build the HTML book with Jupyter Book.

Each chapter is a jupytext percent-format notebook ``book/<name>.py`` listed in ``_toc.yml``.
``build_book`` executes it with the parameters in ``params/<profile>/<name>.yaml`` into
``book/<name>.ipynb``, two chapters at a time by default, in the phases of :data:`ORDER`; then
it builds ``_build/html`` without executing anything again, of the pages executed so far (on a
fresh clone, ``--only X`` builds a book of X and the pages that need no execution; the others
join once executed). Jupyter Book's output goes to ``_build/jupyter-book.log``; a failed build is
one line naming it. Each executed chapter shows the
parameters that ran once, in its parameters cell; a copy with every glued value written in
place is kept in ``_build/notebooks/`` for reading outside the book. The time each chapter
took is kept in ``_build/chapter_times.json`` for the pages that report it.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import pprint
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import yaml

from lrsc.errors import ChapterFailed, ConfigError
from lrsc.paths import project_root
from lrsc.store import write_text

if TYPE_CHECKING:  # lrsc.engines imports torch, which a process that only executes a chapter does without
    from lrsc.engines import Choice


def chapters(root: Path) -> list[str]:
    """Files named in ``_toc.yml`` that have a jupytext notebook beside them (``book/x`` for ``book/x.py``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in [toc] + toc.get("parts", []) for c in part.get("chapters", [])]
    return [f for f in files if (root / f"{f}.py").is_file()]


def _parameters_source(cell_source: str, values: dict) -> str:
    """The parameters cell with each assigned name's value replaced by the one that ran, its comment kept."""
    tree = ast.parse(cell_source)
    lines = cell_source.splitlines()
    out, last = [], 0
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        out += lines[last:node.lineno - 1]
        end_line = lines[node.end_lineno - 1]
        comment = end_line[end_line.index("#", node.end_col_offset):] if "#" in end_line[node.end_col_offset:] else ""
        value = values.get(name, ast.literal_eval(node.value))
        text = f"{name} = {pprint.pformat(value, width=100, sort_dicts=False)}"
        out.append(f"{text}  {comment}" if comment else text)
        last = node.end_lineno
    return "\n".join(out + lines[last:])


def _show_parameters(nb, parameters: dict) -> None:
    """Show the parameters that ran once: in the chapter's own parameters cell, with its comments;
    papermill's injected copy is dropped."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = _parameters_source(cell.source, parameters)


GLUE = re.compile(r"\{glue(?::text)?\}`([^`:]+)(?::([^`]*))?`")
GLUE_BLOCK = re.compile(r"```\{glue:(figure|md)\} ([^\n]+)\n(.*?)```", re.S)


def _glued(nb) -> dict[str, dict]:
    """``{name: mime bundle}`` of every value the notebook glued."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                prefix = out["metadata"]["scrapbook"]["mime_prefix"]
                found[name] = {k.removeprefix(prefix): v for k, v in out.get("data", {}).items()}
    return found


def _text(bundle: dict, spec: str | None) -> str:
    text = bundle.get("text/plain", "")
    if spec:
        try:
            return format(ast.literal_eval(text), spec)
        except (ValueError, SyntaxError, TypeError):
            return text
    return text.strip("'\"")


def inline_glue(nb) -> None:
    """Write every glued value into the notebook's Markdown in place of its ``{glue}`` role or
    directive (figures as embedded images), so it reads right outside the book."""
    glued = _glued(nb)

    def block(match: re.Match) -> str:
        kind, name, body = match.group(1), match.group(2).strip(), match.group(3)
        bundle = glued.get(name, {})
        if kind == "md":
            return bundle.get("text/markdown", "")
        caption = "\n".join(line for line in body.splitlines() if not line.startswith(":")).strip()
        png = bundle.get("image/png", "")
        return f"![{caption}](data:image/png;base64,{png})\n\n*{caption}*\n" if png else f"*{caption}*\n"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            source = GLUE_BLOCK.sub(block, cell.source)
            cell.source = GLUE.sub(lambda m: _text(glued.get(m.group(1), {}), m.group(2)), source)


class _Notices:
    """Where papermill writes a chapter kernel's stderr: lrsc's notices there (``lrsc: ...`` lines,
    e.g. each sweep's runs by status as it ends, see :mod:`lrsc.progress`) go on to this process's
    stderr, named by the chapter, so ``lrsc book`` shows what each chapter does as it goes; the
    rest (progress bars, warnings) stays in the executed notebook only."""

    def __init__(self, chapter: str):
        self.chapter, self.pending = Path(chapter).name, ""

    def write(self, text: str) -> None:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.startswith("lrsc: "):
                print(f"lrsc: {self.chapter}: {line.removeprefix('lrsc: ')}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        pass


def execute_chapter(root: Path, chapter: str, parameters: dict) -> Path:
    """Run ``<chapter>.py`` through papermill with ``parameters``; returns the executed ``.ipynb``.

    The kernel runs in ``root``; its notices (each sweep's runs by status, as it ends) are shown
    on stderr as it runs (:class:`_Notices`). The notebook is written to a temporary name and renamed into
    place only when every cell succeeded, so a failed run leaves the old one intact. A copy
    with the glued values written in is kept in ``_build/notebooks/``.
    """
    import jupytext
    import nbformat
    import papermill

    nb = jupytext.read(root / f"{chapter}.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = root / f"{chapter}.ipynb"
    tmp = out.with_name(f".{out.name}.tmp.ipynb")
    try:
        papermill.execute_notebook(nb, str(tmp), parameters=parameters, kernel_name="python3", cwd=str(root),
                                   progress_bar=False, stderr_file=_Notices(chapter))
    except papermill.PapermillExecutionError as e:
        raise ChapterFailed(f"chapter {chapter} failed in cell {e.exec_count}: {e.ename}: {e.evalue} "
                          f"(the executed notebook is {tmp})") from None
    executed = nbformat.read(tmp, as_version=4)
    _show_parameters(executed, parameters)
    nbformat.write(executed, tmp)
    os.replace(tmp, out)
    inline_glue(executed)
    standalone = root / "_build" / "notebooks" / f"{Path(chapter).name}.ipynb"
    standalone.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, standalone)
    return out


def _parameter_names(root: Path, chapter: str) -> set[str]:
    """The names a chapter's parameters cell assigns."""
    from lrsc import sweeplist

    return set(sweeplist.parameter_defaults(root, chapter))


# When a page runs, from its parameters file's ``order`` key (not passed to the notebook): the
# chapters that train first, side by side, and after them, in the same pool, those that judge
# runs the others train (one that starts while a run it needs is still training waits for it in
# the run store, so a core that would idle at the end of the training does its work); then the
# pages that time this machine, one at a time with nothing beside them; then the pages that
# only read what the chapters stored (the root page among them).
ORDER = ("trains", "reuses", "alone", "reads")


def _order(params_dir: Path, chapter: str) -> str:
    path = params_dir / f"{Path(chapter).name}.yaml"
    order = (yaml.safe_load(path.read_text()) or {}).get("order", "trains") if path.is_file() else "trains"
    if order not in ORDER:
        raise ConfigError(f"{path}: order must be one of {', '.join(ORDER)}, got {order!r}")
    return order


def _left_out(params_dir: Path, chapter: str) -> str:
    """Why the profile leaves ``chapter`` out of its book (its parameters file's ``leave_out`` key,
    not passed to the notebook); "" for a chapter it runs."""
    path = params_dir / f"{Path(chapter).name}.yaml"
    reason = (yaml.safe_load(path.read_text()) or {}).get("leave_out", "") if path.is_file() else ""
    if not isinstance(reason, str):
        raise ConfigError(f"{path}: leave_out must be a sentence saying why the profile leaves the chapter out, "
                          f"got {reason!r}")
    return reason.strip()


def _record_left_out(root: Path, params_dir: Path, left_out: dict[str, str]) -> None:
    """Record each left-out chapter in its results folder: its claims are untestable with the
    reason (:func:`lrsc.claims.leave_out`)."""
    from lrsc import claims, sweeplist  # here: the claims import torch, which executing a chapter does without

    for chapter, reason in left_out.items():
        results_dir = sweeplist.given_parameters(params_dir, chapter).get("results_dir")
        if not results_dir:
            raise ConfigError(f"{params_dir / Path(chapter).name}.yaml leaves the chapter out but names no "
                              f"results_dir, where its claims are recorded as untestable; add results_dir")
        claims.leave_out(root / results_dir, Path(chapter).name, reason)


def profile_chapters(root: Path, profile: str) -> tuple[list[str], Path, dict[str, str]]:
    """The chapters ``profile`` runs (of :func:`chapters`), the folder of their parameters, and
    the chapters it leaves out, each with why (``leave_out`` in its parameters file); raises
    ConfigError when the profile lacks a parameter file a chapter with parameters needs."""
    names = chapters(root)
    params_dir = root / "params" / profile
    missing = [c for c in names if not (params_dir / f"{Path(c).name}.yaml").is_file() and _parameter_names(root, c)]
    if not params_dir.is_dir() or missing:
        profiles = sorted(p.name for p in (root / "params").iterdir() if p.is_dir())
        raise ConfigError(f"profile {profile!r} lacks parameter files for {', '.join(missing) or 'every chapter'} "
                          f"in {params_dir}; available profiles: {', '.join(profiles)}")
    left_out = {c: reason for c in names if (reason := _left_out(params_dir, c))}
    return [n for n in names if n not in left_out], params_dir, left_out


def build_book(root: str | Path = ".", profile: str = "quick", execute: bool = True, only: list[str] | None = None,
               overrides: dict | None = None, jobs: int | None = None, engine: Choice | None = None) -> Path:
    """Execute the chapters with ``params/<profile>/`` and build the HTML; returns ``_build/html``.

    ``only``: execute just these chapters (by name, e.g. ``fig3_parity``), with ``overrides``
    (``{dotted key: value}``) applied to every sweep they run, then rebuild the book around them.
    ``jobs``: chapters executed at once (default: :func:`default_jobs`), each kernel on its share
    of the CPU cores. Chapters that share a sweep share its runs through the run store: each run
    is trained by whichever chapter claims it first, and the other waits for it. A chapter whose
    parameters file says ``leave_out: <why>`` is not executed and not in this profile's book; its
    claims are untestable with that reason.

    ``engine``: where the chapters' sweeps train (default: in each chapter's kernel). On a
    cluster (``dask`` or ``slurm``) the sweeps the chapters declare (:mod:`lrsc.sweeplist`) are
    trained first, ``jobs`` sweeps at a time, and the chapters then find their runs in the run
    store; a sweep a chapter makes from another's results goes to the same engine from the
    chapter's kernel. ``dask`` without a scheduler starts one local cluster for the whole build.
    """
    root = project_root(root)
    chosen, params_dir, left_out = profile_chapters(root, profile)
    names = chapters(root)
    if only:
        unknown = [c for c in only if c not in {Path(n).name for n in names}]
        if unknown:
            raise ConfigError(f"no chapter {unknown[0]!r}; chapters: {', '.join(Path(n).name for n in names)}")
        skipped = [n for n in names if Path(n).name in only and n in left_out]
        if skipped:
            raise ConfigError(f"profile {profile!r} leaves chapter {Path(skipped[0]).name} out "
                              f"({left_out[skipped[0]]}); choose another profile, e.g. --profile full")
        chosen = [n for n in names if Path(n).name in only]
    if overrides and not only:
        raise ConfigError("--set goes with --only: name the chapter(s) whose sweeps it changes")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    _record_left_out(root, params_dir, left_out)  # first: the pages that read the ledger see it
    if execute:
        with _engine_for_kernels(engine) as choice:
            _execute_all(root, chosen, params_dir, profile, overrides, jobs or default_jobs(), choice)
    _jupyter_book(root, _buildable_toc(root, set(left_out)))
    html = root / "_build" / "html"
    print(f"book written to {html / 'index.html'}")
    return html


def _jupyter_book(root: Path, toc: Path | None) -> None:
    """Build ``_build/html`` from the executed notebooks (with ``toc`` in place of ``_toc.yml``
    where given); its output goes to ``_build/jupyter-book.log``, named in the error if it fails."""
    jb = Path(sys.executable).with_name("jupyter-book")
    log = root / "_build" / "jupyter-book.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        command = [str(jb), "build", str(root), "--builder", "html", *(["--toc", str(toc)] if toc else [])]
        built = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT)
    if built.returncode:
        lines = log.read_text().strip().splitlines()
        raise ChapterFailed(f"jupyter-book could not build the HTML ({lines[-1] if lines else 'no output'}); its "
                            f"whole output is in {log}")


def _buildable_toc(root: Path, left_out: set[str]) -> Path | None:
    """A table of contents of the pages that can be built now, when some cannot: none the profile
    leaves out, a notebook page only once it has been executed (``book/<name>.ipynb``), every
    other page as it is; None when every page can be. The root page, when not executed yet, gives
    its place to the first page that is. Written to ``_build/_toc.built.yml``; the pages waiting
    to be executed are named on stdout."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    notebooks = set(chapters(root))

    def ready(page: str) -> bool:
        return page not in left_out and (page not in notebooks or (root / f"{page}.ipynb").is_file())

    parts = lambda t: [t] + t.get("parts", [])  # noqa: E731  (the levels that hold chapters)
    missing = [f for f in [toc["root"]] + [c["file"] for part in parts(toc) for c in part.get("chapters", [])]
               if not ready(f)]
    if not missing:
        return None
    partial = copy.deepcopy(toc)
    for part in parts(partial):
        if "chapters" in part:
            part["chapters"] = [c for c in part["chapters"] if ready(c["file"])]
    if "parts" in partial:
        partial["parts"] = [part for part in partial["parts"] if part["chapters"]]
    if not ready(toc["root"]):
        first = next((part for part in parts(partial) if part.get("chapters")), None)
        if first is None:
            raise ConfigError("no page of the book has been executed yet: run lrsc book, or lrsc book --only CHAPTER")
        partial["root"] = first["chapters"].pop(0)["file"]
    path = root / "_build" / "_toc.built.yml"
    write_text(yaml.safe_dump(partial, sort_keys=False), path)
    waiting = [Path(f).name for f in missing if f not in left_out]
    if waiting:
        print(f"building the pages executed so far; left out until they are executed (lrsc book executes every "
              f"chapter): {', '.join(waiting)}", flush=True)
    return path


@contextmanager
def _engine_for_kernels(engine: Choice | None) -> Iterator[Choice | None]:
    """While the chapters run, ``engine`` in :data:`lrsc.engines.ENGINE_ENV` for their kernels, with
    a Dask engine that names no scheduler given one local cluster for the whole build."""
    if engine is None or engine == type(engine)():  # the default: each kernel trains its sweeps itself
        yield None
        return
    from lrsc.engines import ENGINE_ENV, local_dask_cluster, uses_gpu

    cluster = None
    if engine.engine == "dask" and not engine.scheduler:
        cluster = local_dask_cluster(engine.workers, uses_gpu(engine.device))
        engine = replace(engine, scheduler=cluster.scheduler_address)
    previous = os.environ.get(ENGINE_ENV)
    os.environ[ENGINE_ENV] = engine.to_env()
    try:
        yield engine
    finally:
        os.environ.pop(ENGINE_ENV) if previous is None else os.environ.update({ENGINE_ENV: previous})
        if cluster is not None:
            cluster.close()


def default_jobs() -> int:
    """Chapters executed at once by default: two where there are two CPU cores or more. Much of a
    chapter's time is single-threaded (starting its kernel, reading stored runs, attributions,
    plots), so two chapters on a core each finish sooner than one after another on both."""
    return min(2, os.cpu_count() or 1)


def _phases(root: Path, chosen: list[str], params_dir: Path) -> list[tuple[list[str], bool]]:
    """The chapters in the order they run (:data:`ORDER`), as ``(chapters, may run side by side)``."""
    root_page = yaml.safe_load((root / "_toc.yml").read_text())["root"]
    order = {c: "reads" if c == root_page else _order(params_dir, c) for c in chosen}
    of = lambda *kinds: [c for c in chosen if order[c] in kinds]  # noqa: E731  (in the book's order)
    return [(of("trains") + of("reuses"), True), (of("alone"), False), (of("reads"), True)]


def _timed(root: Path, chapter: str, parameters: dict, profile: str, threads: int | None) -> float:
    """Execute a chapter (its kernel on ``threads`` CPU threads, None: torch's default); its seconds."""
    if threads:
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print(f"executing {chapter} with params/{profile}/{Path(chapter).name}.yaml", flush=True)
    started = time.time()
    execute_chapter(root, chapter, parameters)
    seconds = round(time.time() - started, 1)
    print(f"{chapter} done in {seconds:.0f} s", flush=True)
    return seconds


def _execute_all(root: Path, chosen: list[str], params_dir: Path, profile: str, overrides: dict | None,
                 jobs: int, engine: Choice | None) -> None:
    """Execute ``chosen`` chapters phase by phase (:func:`_phases`), ``jobs`` at a time where a
    phase allows it, and keep each chapter's time in ``_build/chapter_times.json``; on a cluster
    ``engine``, first train the sweeps they declare (:func:`_train_declared`)."""
    from lrsc import sweeplist

    params = {c: sweeplist.given_parameters(params_dir, c, overrides) for c in chosen}
    if overrides:
        lacking = [c for c in chosen if "overrides" not in _parameter_names(root, c)]
        if lacking:
            raise ConfigError(f"chapter {Path(lacking[0]).name} runs no sweep of its own; --set cannot change it")
    if engine is not None and engine.engine != "local":
        _train_declared(root, chosen, params, engine, jobs)
    times_path = root / "_build" / "chapter_times.json"
    times = json.loads(times_path.read_text())["chapters"] if times_path.is_file() else {}
    names = ", ".join(Path(c).name for c in chosen)
    print(f"executing {len(chosen)} chapter{'s' if len(chosen) != 1 else ''} ({names}), up to {jobs} at a time; "
          f"each sweep's runs are counted as it ends", flush=True)
    for phase, side_by_side in _phases(root, chosen, params_dir):
        width = min(jobs, len(phase)) if side_by_side else 1
        if width > 1:
            threads = max(1, (os.cpu_count() or 1) // width)  # each kernel on an equal share of the cores
            seconds = _at_once(_timed, [(root, c, params[c], profile, threads) for c in phase], width)
            times.update({Path(c).name: s for c, s in zip(phase, seconds)})
        for chapter in phase if width <= 1 else ():
            times[Path(chapter).name] = _timed(root, chapter, params[chapter], profile, None)
        times_path.parent.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps({"chapters": times, "jobs": jobs}, indent=1))


def _train_declared(root: Path, chosen: list[str], params: dict, engine: Choice, jobs: int) -> None:
    """Train the sweeps the ``chosen`` chapters declare (:func:`lrsc.sweeplist.declared`) on
    ``engine``, ``jobs`` at a time, before any chapter runs: each sweep whose LRs come from
    another's results trains after that one, in the same process."""
    from lrsc import sweeplist

    sweeps = sweeplist.unique([s for c in chosen for s in sweeplist.declared(root, c, params[c])])
    chains = {s.out: [s] for s in sweeps if s.source is None}
    for s in sweeps:
        if s.source in chains:
            chains[s.source].append(s)
    print(f"training the {len(sweeps)} sweeps of {len(chosen)} chapter(s) on --engine {engine.engine}", flush=True)
    _at_once(_train_chain, [(chain, engine) for chain in chains.values()], jobs)


def _train_chain(chain: list, engine: Choice) -> None:
    """Train a declared sweep, then the sweeps that take their LRs from its results."""
    from lrsc.sweep import run_sweep

    results = {}
    for s in chain:
        results[s.out] = run_sweep(s.params, s.out, s.given(results.get(s.source)), progress=False,
                                   **engine.sweep_options())


def _at_once(fn: Callable, arg_lists: list[tuple], width: int) -> list:
    """``[fn(*args) for args in arg_lists]``, ``width`` at a time, each call in a process of its own.
    The first failure is raised once the calls already running have ended (what they trained
    stays stored)."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(width, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args) for args in arg_lists]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            raise failed.exception()
        return [future.result() for future in futures]


def chapter_title(root: Path, chapter: str) -> str:
    """A chapter's title: the first Markdown heading of ``<chapter>.py``."""
    heading = re.search(r"^# # (.+)$", (root / f"{chapter}.py").read_text(), re.M)
    return heading.group(1).strip() if heading else Path(chapter).name


def chapter_times(root: str | Path = ".") -> tuple[dict[str, float], int]:
    """Seconds each chapter took in the builds of this project folder (the latest execution of each),
    by chapter title in the book's order, and how many chapters the latest build executed at once."""
    root = project_root(root)
    path = root / "_build" / "chapter_times.json"
    record = json.loads(path.read_text()) if path.is_file() else {"chapters": {}, "jobs": 1}
    times = record["chapters"]
    return {chapter_title(root, c): times[Path(c).name] for c in chapters(root) if Path(c).name in times}, record["jobs"]
