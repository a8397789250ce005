"""The claims ledger: every chapter's verdicts come from stored results through the one rule, the
claims page is their union, and the book runs the pages that only read results last."""
import numpy as np
import pytest
import xarray as xr
import yaml

from lrsc import book, claims, variables

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
    table = claims.ledger(tmp_path, chapter="fig3_parity")
    assert table.loc["fig3.parity.test_acc", "verdict"] == "agrees"
    assert table.loc["fig3.parity.prunability", "verdict"] == "disagrees"
    assert table.loc["fig3.parity.test_acc", "on"] == "Parity, FCN"
    assert table.loc["fig3.parity.test_acc", "claim"] == "Unbiased test accuracy rises with the learning rate."
    assert "fig15.moon_star.test_acc" not in table.index  # its sweep is not stored: no row
    assert set(table.chapter) == {"fig3_parity"}
    # the same rows, word for word, on the claims page
    everything = claims.ledger(tmp_path)
    assert everything.loc[table.index].equals(table)
    assert claims.says(table, "fig3.parity.test_acc").startswith("rises (+")
    assert claims.says(table, "fig3.parity.test_acc").endswith("as the paper claims")
    assert claims.says(table, "fig3.parity.prunability").endswith("against the paper's claim")
    assert claims.counts(table)["agrees"] >= 1 and sum(claims.counts(table).values()) == len(table)
    markdown = claims.markdown(table, link=True)
    assert "| Fig. 3 | Unbiased test accuracy rises" in markdown and "{doc}`fig3_parity`" in markdown


def test_both_claims(tmp_path):
    _store(tmp_path, "hp_parity", _sweep(RISING, np.asarray(RISING) - 0.3))
    up = _sweep(RISING, np.asarray(RISING) - 0.3, axis="momentum", values=[0.0, 0.5, 0.8, 0.9]).expand_dims(lr=[0.05])
    trade = _sweep(RISING, np.asarray(RISING)[::-1] - 0.3, axis="l1", values=[0, 1e-5, 1e-4, 1e-3]).expand_dims(lr=[0.05])
    _store(tmp_path, "hp_momentum", up)
    _store(tmp_path, "hp_l1", trade)
    table = claims.ledger(tmp_path, chapter="fig6_hyperparameters")
    assert table.loc["fig6.hp_parity.both", "verdict"] == "agrees"
    assert table.loc["fig6.hp_momentum.both", "verdict"] == "disagrees"  # momentum gets both here
    assert table.loc["fig6.hp_l1.both", "verdict"] == "agrees"  # L1 trades prunability for accuracy
    assert "fig6.hp_asam_rho.both" not in table.index
    assert "test_acc: +" in table.loc["fig6.hp_parity.both", "effect"]  # each part's numbers beside the verdict


def test_correlation_claim_pools_the_main_sweeps(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("parity", "moon_star"):
        acc = 0.5 + 0.3 * rng.random((4, 3))
        ds = _sweep(acc)
        ds["max_bc_loss_ratio"] = ds.test_acc * 2 - 0.5  # rises with accuracy, exactly
        ds["max_bc_loss_ratio"].attrs.update(variables.get("max_bc_loss_ratio").attrs())
        _store(tmp_path, folder, ds)
    row = claims.ledger(tmp_path).loc["fig12"]
    assert row.verdict == "agrees" and row.compared == 24 and row.on == "2 sweeps pooled"


def test_claims_are_declared_once_for_each_figure(tmp_path):
    declared = claims.all_claims(tmp_path)  # the default sweep folders of every chapter
    ids = [c.id for c in declared]
    assert len(ids) == len(set(ids))
    for figure in ("Fig. 3", "Fig. 4, 16", "Fig. 5", "Fig. 6, Tab. 2", "Fig. 7, 19", "Fig. 10, 11", "Fig. 12",
                   "Fig. 13", "Fig. 15", "Fig. 18", "Prop. 1-2", "Fig. 23-25, 29", "Fig. 30 (left)",
                   "Fig. 30 (right)", "Fig. 14"):
        assert any(c.figure == figure for c in declared), figure
    # a chapter that records its own folders is judged on those
    claims.record(tmp_path, "fig7_naturalistic", {"sweeps": ["params/mine/vit_on_waterbirds.yaml"]})
    assert [c.folder for c in claims.all_claims(tmp_path, "fig7_naturalistic")] == ["vit_on_waterbirds"] * 3


def test_reads_only_pages_run_after_the_chapters(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": "book/claims"}, {"file": "book/a"}, {"file": "book/b"}]}))
    (tmp_path / "book").mkdir()
    params = tmp_path / "params" / "p"
    params.mkdir(parents=True)
    for name in ("intro", "claims", "a", "b"):
        (tmp_path / "book" / f"{name}.py").write_text('# %% tags=["parameters"]\nx = 0\n')
        (params / f"{name}.yaml").write_text(yaml.safe_dump({"x": 1, **({"reads_only": True} if name == "claims" else {})}))
    ran = []
    monkeypatch.setattr(book, "execute_chapter", lambda root, chapter, p: ran.append((chapter, p)))
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: None)
    book.build_book(tmp_path, profile="p")
    assert [c for c, _ in ran] == ["book/a", "book/b", "book/intro", "book/claims"]
    assert all(p == {"x": 1} for _, p in ran)  # reads_only orders pages; the notebook never sees it
    ran.clear()
    book.build_book(tmp_path, profile="p", only=["b"])
    assert [c for c, _ in ran] == ["book/b"]
    with pytest.raises(book.ConfigError, match="no chapter 'nope'"):
        book.build_book(tmp_path, profile="p", only=["nope"])
