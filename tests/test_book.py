"""The whole book end to end on tiny sweeps: every chapter executed by papermill and built, each
page's verdicts the claims page's rows, the prose's verdicts the table's, and pages that speak
to readers (no console output, no internal documents, figures with alt text)."""
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

import pandas as pd

from lrsc import claims, paper, report
from lrsc.book import build_book, chapter_times, chapter_title, default_jobs, inline_glue
from lrsc.errors import ConfigError

import book_project

CHAPTERS = [name for name in book_project.chapters() if name not in ("intro", "claims")]


def _text(page: Path) -> str:
    """A page's visible text: its main part, folded code cells left out."""
    html = page.read_text()
    html = html[html.find("<main"):html.find("</main>")]
    html = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    html = re.sub(r'<div class="cell_input.*?</div>\s*</div>\s*</div>', "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _glue_records(nb) -> list[tuple[str, dict]]:
    """Each glued value of an executed notebook, as (name, {mime type: data}), in page order."""
    return [(record["name"], {k.removeprefix(record["mime_prefix"]): v for k, v in out["data"].items()})
            for cell in nb.cells for out in cell.get("outputs", [])
            if (record := out.get("metadata", {}).get("scrapbook"))]


def _glued(nb) -> dict[str, dict]:
    return dict(_glue_records(nb))


def test_every_page_is_built_and_speaks_to_readers(tiny_book):
    root, html = tiny_book
    for name in ("intro", "claims", "definitions", *CHAPTERS, "scaling_out"):
        page = html / "book" / f"{name}.html"
        raw, text = page.read_text(), _text(page)
        assert "Traceback" not in raw and "Error" not in text, name
        for internal in ("SPEC", "extraction", "shared/", "lrsc: ", "Warning", "issue"):
            assert internal not in text, (name, internal)
        for tag in re.findall(r"<img[^>]*>", raw):
            assert re.search(r'alt="[^"]+"', tag), (name, tag[:120])
        assert "Figure " not in text.replace("Book figure", "")  # our figures cannot be read as the paper's
    times, jobs = chapter_times(root)
    assert set(times) >= {chapter_title(root, f"book/{name}") for name in CHAPTERS} and jobs == default_jobs()


def test_no_name_is_glued_twice(tiny_book):
    """A name glued twice shows its last value wherever the prose cites it (e.g. a figure in a sentence)."""
    root, _ = tiny_book
    for name in ("intro", "claims", *CHAPTERS):
        path = root / "book" / f"{name}.ipynb"
        if path.is_file():  # the image chapters are executed only where LRSC_DATA holds their data
            names = [n for n, _ in _glue_records(nbformat.read(path, as_version=4))]
            assert not {n for n in names if names.count(n) > 1}, name


def test_each_chapter_table_is_the_claims_pages_rows(tiny_book):
    root, _ = tiny_book
    results = root / "results" / "tiny"
    everything = claims.ledger(results)
    claims_page = _glued(nbformat.read(root / "book" / "claims.ipynb", as_version=4))["claims_tables"]["text/markdown"]
    for name in (c for c in CHAPTERS if c != "performance"):  # the performance page judges no claim
        own = everything[everything.chapter == name]
        assert len(own) > 0, name
        nb = nbformat.read(root / "book" / f"{name}.ipynb", as_version=4)
        tables = [v["text/markdown"] for k, v in _glued(nb).items() if k.endswith("_claims")]
        assert len(tables) == 1, name
        rows = tables[0].splitlines()[2:]
        assert len(rows) == len(own), name  # one row per verdict of the chapter, in the ledger's order
        for line, (_, claim) in zip(rows, own.iterrows()):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0] == claim.figure and report.SHOWN[claim.verdict] == cells[3], line
            assert claim.text.split(",")[0] in cells[4], line  # the effect the ledger holds
            assert line.removesuffix("|") in claims_page, line  # the claims page has the same row, word for word
    assert len(everything) >= 30
    # the ledger a reader can take away holds every verdict the pages show
    csv = pd.read_csv(results / "claims.csv", index_col="id")
    assert list(csv.index) == list(everything.index) and (csv.verdict == everything.verdict).all()


def test_no_verdict_outruns_its_interval(tiny_book):
    root, _ = tiny_book
    table = claims.ledger(root / "results" / "tiny")
    interval = table.low.notna()
    decided = table[table.verdict.isin(["agrees", "disagrees"]) & interval]
    assert len(decided) > 0
    assert ((decided.low > 0) | (decided.high < 0)).all()  # the interval excludes zero
    open_ = table[table.verdict.isin(["inconclusive"]) & interval]
    assert ((open_.low <= 0) & (open_.high >= 0)).all()  # an undecided one contains it
    bounded = table[(table.verdict == "untestable") & table.reason.str.contains("ceiling|floor") & interval]
    assert ((bounded.low <= 0) & (bounded.high >= 0)).all()  # a bound never hides a decision
    none = table[(table.verdict == "no effect") & interval]
    assert ((none.low > -none.sesoi) & (none.high < none.sesoi)).all()  # inside the smallest effect of interest
    paired = table[interval]
    assert paired.text.str.contains("90% CI").all()
    untestable = table[table.verdict == "untestable"]
    assert (untestable.reason != "").all()


def test_prose_states_the_tables_verdicts(tiny_book):
    root, html = tiny_book
    table = claims.ledger(root / "results" / "tiny", chapter="fig3_parity")
    glued = _glued(nbformat.read(root / "book" / "fig3_parity.ipynb", as_version=4))
    for short, claim in (("acc", "fig3.acc"), ("prune", "fig3.prune"), ("core", "fig3.core")):
        said = glued[f"parity_{short}_says"]["text/plain"].strip("'\"")
        assert said == report.says(table, claim)
        assert said.split(" (")[0] in _text(html / "book" / "fig3_parity.html")
    front = _text(html / "book" / "intro.html")
    everything = claims.with_q(claims.ledger(root / "results" / "tiny"))
    everything = everything[everything.source == "paper"]  # the front page counts the paper's claims
    counts = claims.counts(everything)
    assert f"{counts['agrees']} agree with the paper" in front and f"{counts['untestable']} could not be judged" in front
    assert f"{counts['no effect']} find no effect" in front
    assert f"{int(everything.survives.sum())} of the {counts['agrees'] + counts['disagrees']} decisive" in front
    for words in paper.CONTRIBUTIONS.values():  # the five contributions, each answered
        assert words[:40] in front


def test_parameters_shown_once_and_glue_readable_outside_the_book(tiny_book):
    root, _ = tiny_book
    nb = nbformat.read(root / "book" / "fig3_parity.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert not any("injected-parameters" in t for t in tags)
    params = next(c for c, t in zip(nb.cells, tags) if "parameters" in t)
    assert "parity_params = 'params/tiny/parity.yaml'" in params.source  # what ran, not the default
    assert "# sweep config of the parity figure" in params.source  # with its comment
    standalone = nbformat.read(root / "_build" / "notebooks" / "fig3_parity.ipynb", as_version=4)
    markdown = "\n".join(c.source for c in standalone.cells if c.cell_type == "markdown")
    assert "{glue" not in markdown and "data:image/png;base64," in markdown
    again = nbformat.read(root / "book" / "fig3_parity.ipynb", as_version=4)
    inline_glue(again)
    assert "{glue" not in "\n".join(c.source for c in again.cells if c.cell_type == "markdown")


def test_one_chapter_reruns_with_one_command(tiny_book, tmp_path):
    root = tmp_path / "project"  # a copy: the rerun re-judges sweeps the other tests read
    shutil.copytree(tiny_book[0], root, symlinks=True)
    html = root / "_build" / "html"
    before = (root / "book" / "fig5_representations.ipynb").stat().st_mtime
    build_book(root, profile="tiny", only=["fig5_representations"], overrides={"grid.seed": [0, 1]})
    nb = nbformat.read(root / "book" / "fig5_representations.ipynb", as_version=4)
    assert (root / "book" / "fig5_representations.ipynb").stat().st_mtime > before
    assert "overrides = {'grid.seed': [0, 1]}" in next(c.source for c in nb.cells if "parameters" in c.metadata.get(
        "tags", []))
    assert "2 seeds" in _text(html / "book" / "fig5_representations.html")  # the rebuilt page shows what ran
    with pytest.raises(ConfigError, match="--set goes with --only"):
        build_book(root, profile="tiny", overrides={"grid.seed": [0]})
    with pytest.raises(ConfigError, match="runs no sweep of its own"):
        build_book(root, profile="tiny", only=["claims"], overrides={"grid.seed": [0]})


def test_a_profile_leaves_a_chapter_out_with_its_reason(tiny_book, tmp_path):
    """A chapter every tiny project has (the image chapters need LRSC_DATA), left out and then back."""
    root = tmp_path / "project"  # a copy: the claims page is executed again
    shutil.copytree(tiny_book[0], root, symlinks=True)
    params = root / "params" / "tiny" / "fig7_naturalistic.yaml"
    params.write_text(params.read_text() + "leave_out: its dataset cannot be read here\n")
    before = (root / "book" / "fig7_naturalistic.ipynb").stat().st_mtime
    with pytest.raises(ConfigError, match="leaves chapter fig7_naturalistic out .its dataset cannot be read here"):
        build_book(root, profile="tiny", only=["fig7_naturalistic"], execute=False)
    build_book(root, profile="tiny", only=["claims"])
    assert (root / "book" / "fig7_naturalistic.ipynb").stat().st_mtime == before  # not executed
    toc = (root / "_build" / "_toc.built.yml").read_text()
    assert "book/fig7_naturalistic" not in toc and "book/fig3_parity" in toc
    table = pd.read_csv(root / "results" / "tiny" / "claims.csv", index_col="id")
    left = table[table.chapter == "fig7_naturalistic"]
    assert len(left) == len(claims.chapter_claims("fig7_naturalistic"))
    assert (left.verdict == "untestable").all() and left.reason.str.endswith("its dataset cannot be read here").all()
    assert "this profile leaves the chapter out: its dataset cannot be read here" in _text(
        root / "_build" / "html" / "book" / "claims.html")
    params.write_text(params.read_text().replace("leave_out: its dataset cannot be read here\n", ""))
    build_book(root, profile="tiny", only=["fig7_naturalistic"])  # run again: judged on its sweep once more
    assert not claims.left_out(root / "results" / "tiny", "fig7_naturalistic")
    assert claims.roles(root / "results" / "tiny", "fig7_naturalistic")


def test_unknown_profile_is_a_clear_error(tiny_book):
    root, _ = tiny_book
    with pytest.raises(ConfigError, match="profile 'huge' lacks parameter files.*available profiles: tiny"):
        build_book(root, profile="huge", execute=False)


def test_figures_are_numbered_captioned_and_drawn(tiny_book):
    _, html = tiny_book
    page = (html / "book" / "fig3_parity.html").read_text()
    assert page.count('<span class="caption-number">Book figure ') >= 4
    assert np.all([Path(html / "book" / src).is_file() or src.startswith("data:")
                   for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)])


def test_one_chapter_on_a_fresh_clone_builds_a_book_of_it(tmp_path):
    """``lrsc book --only fig3_parity`` where no other chapter was ever executed: HTML, exit 0, the
    pages left out named; then the README's papermill path, as written (on the test project's
    tiny profile), executes the chapter again into the book."""
    import os
    import subprocess
    import sys

    root = book_project.make(tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(bin_dir / "lrsc"), "book", "--profile", "tiny", "--only", "fig3_parity"], cwd=root,
                          capture_output=True, text=True, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "executing book/fig3_parity" in proc.stdout
    html = root / "_build" / "html"
    assert (html / "book" / "fig3_parity.html").is_file() and (html / "index.html").is_file()
    assert not (html / "book" / "intro.html").exists() and not (root / "book" / "intro.ipynb").exists()
    left_out = next(line for line in proc.stdout.splitlines() if "left out until they are executed" in line)
    assert "intro" in left_out and "claims" in left_out and "fig3_parity" not in left_out
    readme = (book_project.ROOT / "README.md").read_text().split("## The book, and one chapter at a time")[1]
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "papermill" in b)
    script = block.replace(".venv/bin", str(bin_dir)).replace("params/quick/", "params/tiny/").replace(
        "--profile quick", "--profile tiny")
    before = (html / "book" / "fig3_parity.html").stat().st_mtime
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=root, capture_output=True, text=True, timeout=1800,
                          env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (html / "book" / "fig3_parity.html").stat().st_mtime > before
    assert "Parity" in _text(html / "book" / "fig3_parity.html")
