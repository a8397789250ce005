"""The book end to end: a chapter executed by papermill with tiny parameters, then built."""
import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import TINY_PARITY
from lrsc.book import build_book
from lrsc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _tiny_project(tmp_path: Path) -> Path:
    """A copy of the book with the front page, the claims page, the parity, representations and
    mechanism chapters (all but parity reload the parity chapter's sweeps) and a 'tiny' profile of
    fast sweeps."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    shutil.copy(ROOT / "_config.yml", root)
    (root / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "book/intro", "chapters": [
            {"file": "book/claims"}, {"file": "book/fig3_parity"}, {"file": "book/fig5_representations"}, {"file": "book/fig12_13_mechanism"}]}))
    params = root / "params" / "tiny"
    params.mkdir(parents=True)
    parity = copy.deepcopy(TINY_PARITY)
    parity["metrics"]["snapshot_steps"] = [0, 20, 100]
    settings = copy.deepcopy(TINY_PARITY)
    settings["grid"] = {"dataset_params.rho": [0.1, 0.3], "lr": [0.3, 1.0], "seed": [0]}
    moon = copy.deepcopy(TINY_PARITY)
    moon.update(dataset="moon_star", dataset_params={"rho": 0.1, "image_size": 12, "n_train": 200, "n_test": 200})
    for name, cfg in (("parity", parity), ("settings", settings), ("moon_star", moon)):
        (params / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    (params / "fig3_parity.yaml").write_text(yaml.safe_dump({
        "parity_params": "params/tiny/parity.yaml", "moon_star_params": "params/tiny/moon_star.yaml",
        "settings_params": "params/tiny/settings.yaml", "results_dir": "results/tiny"}))
    (params / "intro.yaml").write_text(yaml.safe_dump({"results_dir": "results/tiny"}))
    (params / "claims.yaml").write_text(yaml.safe_dump({"results_dir": "results/tiny", "reads_only": True}))
    (params / "fig5_representations.yaml").write_text(yaml.safe_dump({
        "sweep_params": ["params/tiny/parity.yaml"], "results_dir": "results/tiny"}))
    (params / "fig12_13_mechanism.yaml").write_text(yaml.safe_dump({
        "sweep_params": ["params/tiny/parity.yaml", "params/tiny/moon_star.yaml"],
        "dynamics_params": "params/tiny/parity.yaml", "smooth": 2, "n_batch": 100, "results_dir": "results/tiny"}))
    return root


def test_book_executes_the_parity_chapter_and_builds_html(tmp_path):
    root = _tiny_project(tmp_path)
    html = build_book(root, profile="tiny")
    page = (html / "book" / "fig3_parity.html").read_text()
    assert "Fig. 3" in page and page.count("<img") >= 3  # metrics, attributions, moon-star figures
    assert "Traceback" not in page
    # Glued numbers are the run's own: the page quotes the table's accuracy at the largest LR.
    from lrsc import report, store

    ds = store.load(root / "results" / "tiny" / "parity" / "results.nc")
    assert f"{100 * float(ds.test_acc.sel(lr=1.0).mean()):.1f}" in page
    assert (root / "book" / "fig3_parity.ipynb").is_file()
    # Code is folded, papermill's injected cell is gone, figures are numbered and cited.
    visible = re.sub(r"<details.*?</details>", "", page, flags=re.S)  # folded inputs are <details> blocks
    assert "glue(" not in visible and "injected-parameters" not in page
    assert page.count('<span class="caption-number">Figure ') >= 3
    # The front page ran last: it counts the sweeps the parity chapter stored, the settings
    # sweep (dims beyond lr and seed) left out.
    table = report.headline(root / "results" / "tiny")
    assert list(table.index) == ["moon_star", "parity"]
    intro = (html / "book" / "intro.html").read_text()
    assert "Of the 2 sweeps" in re.sub(r"<[^>]+>", "", intro) and "<img" in intro and "Traceback" not in intro
    # The representation and mechanism chapters reload the stored sweeps and quote their own verdicts.
    for name, figures in (("fig5_representations", 1), ("fig12_13_mechanism", 4)):
        chapter = (html / "book" / f"{name}.html").read_text()
        assert "Traceback" not in chapter and chapter.count('<span class="caption-number">Figure ') == figures
    text = re.sub(r"<[^>]+>", "", (html / "book" / "fig5_representations.html").read_text())
    verdicts = report.trend_table({"p": ds}, {"CSI": "csi"})
    assert f"the CSI clearly rises\nwith LR in {int((verdicts[('CSI', 'verdict')] == 'agrees').sum())}" in text
    # The claims page ran after the chapters (first in the TOC): its counts are the ledger's,
    # its table links each claim to its chapter, and it draws the settings map.
    from lrsc import claims

    ledger = claims.ledger(root / "results" / "tiny")
    page = (html / "book" / "claims.html").read_text()
    text = re.sub(r"<[^>]+>", "", re.sub(r"<details.*?</details>", "", page, flags=re.S))
    assert "Traceback" not in page and page.count('<span class="caption-number">Figure ') == 1
    assert 'href="fig3_parity.html' in page and "<table" in page and "{doc}" not in text
    assert f"{int((ledger.verdict == 'agrees').sum())} agree with the paper" in text
    assert (ledger.verdict != claims.NOT_RUN).sum() >= 8  # parity and moon-star claims, and Fig. 12


def test_unknown_profile_is_a_clear_error(tmp_path):
    root = _tiny_project(tmp_path)
    with pytest.raises(ConfigError, match="profile 'huge' lacks parameter files.*available profiles: tiny"):
        build_book(root, profile="huge")
