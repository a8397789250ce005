"""The claims ledger: every chapter's verdicts come from stored results through the one rule, the
claims page is their union, and the book runs its pages in phases, two chapters at a time."""
import os

import numpy as np
import pytest
import xarray as xr
import yaml

import pandas as pd

from lrsc import book, claims, report, variables, verdicts
from lrsc.errors import ChapterFailed, ConfigError

LRS = [0.01, 0.03, 0.1, 0.3]
RISING = [[0.50, 0.52, 0.51], [0.55, 0.56, 0.54], [0.70, 0.71, 0.69], [0.80, 0.82, 0.81]]


def _sweep(acc, prun=None, axis="lr", values=None, title="") -> xr.Dataset:
    acc = np.asarray(acc, float)
    prun = acc if prun is None else np.asarray(prun, float)
    dims = (axis, "seed")
    ds = xr.Dataset({"test_acc": (dims, acc), "prunability": (dims, prun),
                     "max_bc_loss_ratio": (dims, acc * 0.5 + 0.1 * np.arange(acc.shape[1])),
                     "converged": (dims, np.ones(acc.shape, bool)), "diverged": (dims, np.zeros(acc.shape, bool))},
                    coords={axis: values or LRS[:acc.shape[0]], "seed": list(range(acc.shape[1]))},
                    attrs={"title": title, "config": '{"dataset": "parity", "model": "fcn"}'})
    for var in ("test_acc", "prunability", "max_bc_loss_ratio"):
        ds[var].attrs.update(variables.get(var).attrs())
    return ds


def _store(root, folder, ds) -> None:
    (root / folder).mkdir(parents=True)
    ds.to_netcdf(root / folder / "results.nc")


def test_trend_claims_from_stored_sweeps(tmp_path):
    _store(tmp_path, "parity", _sweep(RISING, np.asarray(RISING)[::-1] - 0.3, title="Parity, FCN"))
    claims.record(tmp_path, "fig3_parity", {"parity": ["parity"], "moon_star": ["moon_star"]})
    table = claims.ledger(tmp_path, chapter="fig3_parity")
    assert table.loc["fig3.acc/parity", "verdict"] == "agrees"
    assert table.loc["fig3.prune/parity", "verdict"] == "disagrees"
    assert table.loc["fig3.both/parity", "verdict"] == "disagrees"  # accuracy rises, prunability falls: not both
    assert table.loc["fig3.acc/parity", "on"] == "Parity, FCN"
    assert table.loc["fig3.acc/parity", "statement"] == "Unbiased test accuracy rises with the learning rate."
    assert table.loc["fig3.acc/parity", "contribution"] == 1 and table.loc["fig3.acc/parity", "figure"] == "Fig. 3"
    assert not table.claim.str.startswith("fig15").any()  # its sweep is not stored: no row
    assert set(table.chapter) == {"fig3_parity"}
    # the same rows, word for word, on the claims page
    everything = claims.ledger(tmp_path)
    pd.testing.assert_frame_equal(everything.loc[table.index], table)
    assert report.says(table, "fig3.acc").startswith("rises (+")
    assert report.says(table, "fig3.acc").endswith("as the paper claims")
    assert report.says(table, "fig3.prune").endswith("against the paper's claim")
    assert report.says(table, "fig15.acc") == "is not judged in this build (its sweep was not run)"
    markdown = report.ledger_markdown(table, link=True)
    assert "| Fig. 3 | Unbiased test accuracy rises" in markdown and "{doc}`fig3_parity`" in markdown


def test_an_unknown_claim_or_role_raises(tmp_path):
    with pytest.raises(ConfigError, match="no claim 'fig3.accuracy'; claims: fig3.acc"):
        claims.get("fig3.accuracy")
    with pytest.raises(ConfigError, match="no claim"):
        report.says(pd.DataFrame(columns=["claim", "folder"]), "fig99")
    with pytest.raises(ConfigError, match="chapter fig3_parity has no role 'main'"):
        claims.record(tmp_path, "fig3_parity", {"main": ["parity"]})
    with pytest.raises(ValueError, match="unknown judge"):
        claims.Claim("x", 1, "Fig. 1", "fig3_parity", "parity", "no_such_judge")


def test_the_table_declares_every_figure_once():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) and set(claims.HEADLINE) <= set(ids)
    assert {c.contribution for c in claims.CLAIMS if c.source == "paper"} == set(range(1, 6))
    assert {c.contribution for c in claims.CLAIMS if c.source == "book"} == {0}  # the book's own: none of the five
    for figure in ("Fig. 3", "Fig. 4, 16", "Fig. 5", "Fig. 6, Tab. 2", "Fig. 7, 19", "Fig. 10, 11", "Fig. 12",
                   "Fig. 13", "Fig. 15", "Fig. 18", "Prop. 1", "Prop. 2", "Fig. 23-25, 29", "Fig. 30 (left)",
                   "Fig. 30 (right)", "Fig. 14"):
        assert any(c.figure == figure for c in claims.CLAIMS), figure


def test_both_claims(tmp_path):
    _store(tmp_path, "hp_parity", _sweep(RISING, np.asarray(RISING) - 0.3))
    up = _sweep(RISING, np.asarray(RISING) - 0.3, axis="momentum", values=[0.0, 0.5, 0.8, 0.9]).expand_dims(lr=[0.05])
    trade = _sweep(RISING, np.asarray(RISING)[::-1] - 0.3, axis="l1", values=[0, 1e-5, 1e-4, 1e-3]).expand_dims(lr=[0.05])
    _store(tmp_path, "hp_momentum", up)
    _store(tmp_path, "hp_l1", trade)
    claims.record(tmp_path, "fig6_hyperparameters", {"lr": ["hp_parity"], "hp": ["hp_momentum", "hp_l1", "hp_asam_rho"]})
    table = claims.ledger(tmp_path, chapter="fig6_hyperparameters")
    assert table.loc["fig6.lr/hp_parity", "verdict"] == "agrees"
    assert table.loc["fig6.others/hp_momentum", "verdict"] == "disagrees"  # momentum gets both here
    assert table.loc["fig6.others/hp_l1", "verdict"] == "agrees"  # L1 trades prunability for accuracy
    assert "fig6.others/hp_asam_rho" not in table.index  # recorded, but not stored
    assert "unbiased test accuracy: agrees, +" in table.loc["fig6.lr/hp_parity", "text"]  # each part beside the verdict


def test_correlation_claim_pools_the_main_sweeps(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("parity", "moon_star"):
        acc = 0.5 + 0.3 * rng.random((4, 3))
        ds = _sweep(acc)
        ds["max_bc_loss_ratio"] = ds.test_acc * 2 - 0.5  # rises with accuracy, exactly
        ds["max_bc_loss_ratio"].attrs.update(variables.get("max_bc_loss_ratio").attrs())
        _store(tmp_path, folder, ds)
    claims.record(tmp_path, "fig12_13_mechanism", {"sweeps": ["parity", "moon_star"]})
    row = claims.ledger(tmp_path).loc["fig12/sweeps"]
    assert row.verdict == "agrees" and row.compared == 24 and row.on == "2 sweeps pooled"


def test_q_values_chance_decisions_and_the_csv(tmp_path):
    _store(tmp_path, "parity", _sweep(RISING, np.asarray(RISING)[::-1] - 0.3, title="Parity, FCN"))
    claims.record(tmp_path, "fig3_parity", {"parity": ["parity"]})
    table = claims.with_q(claims.ledger(tmp_path))
    tested = table[table.p.notnull()]
    assert np.allclose(tested.q, verdicts.q_values(tested.p.to_numpy()))
    assert claims.chance_decisions(table) == pytest.approx(0.1 * len(tested))
    assert (table.survives == (table.verdict.isin(verdicts.DECISIVE) & (table.q <= 0.1))).all()
    path = claims.write_csv(table, tmp_path / "claims.csv")
    back = pd.read_csv(path, index_col="id")
    assert list(back.index) == list(table.index) and "seeds needed" in back and (back.verdict == table.verdict).all()


def _pages(tmp_path, flags: dict, source: str = 'x = 0\n') -> None:
    """A project of pages intro (the root), claims, a, b, perf, each with a parameters cell and the
    given ``flags`` in its parameters file."""
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": f"book/{name}"} for name in ("claims", "a", "b", "perf")]}))
    (tmp_path / "book").mkdir()
    params = tmp_path / "params" / "p"
    params.mkdir(parents=True)
    for name in ("intro", "claims", "a", "b", "perf"):
        (tmp_path / "book" / f"{name}.py").write_text('# %% tags=["parameters"]\n' + source)
        (params / f"{name}.yaml").write_text(yaml.safe_dump({"x": 1, **flags.get(name, {})}))


def test_pages_run_in_phases(tmp_path, monkeypatch):
    _pages(tmp_path, {"claims": {"order": "reads"}, "perf": {"order": "alone"}, "a": {"order": "reuses"}})
    ran = []
    monkeypatch.setattr(book, "execute_chapter",  # as papermill would, it leaves the executed notebook
                        lambda root, chapter, p: ran.append((chapter, p)) or (root / f"{chapter}.ipynb").touch())
    monkeypatch.setattr(book, "_jupyter_book", lambda root, toc: None)
    book.build_book(tmp_path, profile="p", jobs=1)
    assert [c for c, _ in ran] == ["book/b", "book/a", "book/perf", "book/intro", "book/claims"]
    assert all(p == {"x": 1} for _, p in ran)  # order is for build_book; the notebook never sees it
    ran.clear()
    book.build_book(tmp_path, profile="p", only=["b"], jobs=1)
    assert [c for c, _ in ran] == ["book/b"]
    with pytest.raises(book.ConfigError, match="no chapter 'nope'"):
        book.build_book(tmp_path, profile="p", only=["nope"])
    with pytest.raises(book.ConfigError, match="--jobs must be at least 1, got 0"):
        book.build_book(tmp_path, profile="p", jobs=0)
    (tmp_path / "params" / "p" / "b.yaml").write_text("order: first\n")
    with pytest.raises(book.ConfigError, match="b.yaml: order must be one of trains, reuses, alone, reads, got 'first'"):
        book.build_book(tmp_path, profile="p")


def test_chapters_run_side_by_side_on_a_share_of_the_cores(tmp_path, monkeypatch):
    """Two chapters at once, each kernel on half the cores; a page that times the machine runs
    alone, on all of them; a failing chapter stops the build with its name."""
    source = ('x = 0\n# %%\nimport os, time, pathlib\npathlib.Path(f"ran-{time.time()}").write_text('
              'os.environ.get("OMP_NUM_THREADS", "all"))\n')
    _pages(tmp_path, {"claims": {"order": "reads"}, "perf": {"order": "alone"}}, source)
    monkeypatch.setattr(book, "_jupyter_book", lambda root, toc: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "all")
    book.build_book(tmp_path, profile="p", only=["a", "b", "perf"], jobs=2)
    threads = sorted(p.read_text() for p in tmp_path.glob("ran-*"))
    assert threads == sorted([str(max(1, os.cpu_count() // 2))] * 2 + ["all"])
    times, jobs = book.chapter_times(tmp_path)
    assert list(times) == ["a", "b", "perf"] and jobs == 2  # titles: these pages have no heading
    (tmp_path / "book" / "b.py").write_text('# %% tags=["parameters"]\nx = 0\n# %%\nraise ValueError("bad b")\n')
    with pytest.raises(ChapterFailed, match="chapter book/b failed in cell .*ValueError: bad b"):
        book.build_book(tmp_path, profile="p", only=["a", "b"], jobs=2)


def test_a_failed_html_build_names_its_log(tmp_path):
    """jupyter-book failing (here: no table of contents) is an error naming its last line and its log."""
    log = tmp_path / "_build" / "jupyter-book.log"
    with pytest.raises(ChapterFailed, match=rf"jupyter-book could not build the HTML \(.+\); its whole output is in {log}"):
        book._jupyter_book(tmp_path, None)
    assert "toc" in log.read_text().lower()
