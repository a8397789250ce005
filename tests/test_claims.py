"""The claims ledger: verdicts from small hand-made sweeps, and the order the book runs pages in."""
import numpy as np
import pytest
import xarray as xr
import yaml

from lrsc import book, claims, store

LRS = [0.01, 0.03, 0.1, 0.3]
SEEDS = [0, 1, 2]


def _sweep(values, **extra) -> xr.Dataset:
    """A collected sweep with dims (lr, seed): every run converged; ``values`` per LR (one per
    seed each), stored as ``test_acc`` (a fraction, judged in points)."""
    values = np.asarray(values, float)
    coords = {"lr": LRS, "seed": SEEDS}
    data = {"test_acc": (("lr", "seed"), values),
            "converged": (("lr", "seed"), np.ones(values.shape, bool)),
            "diverged": (("lr", "seed"), np.zeros(values.shape, bool))}
    data.update({k: (("lr", "seed"), np.asarray(v, float)) for k, v in extra.items()})
    return xr.Dataset(data, coords=coords)


RISING = [[0.50, 0.52, 0.51], [0.55, 0.56, 0.54], [0.70, 0.71, 0.69], [0.80, 0.82, 0.81]]
FALLING = RISING[::-1]
NOISY = [[0.50, 0.80, 0.60], [0.62, 0.55, 0.70], [0.58, 0.66, 0.52], [0.54, 0.75, 0.61]]


def _claim(folder="sweep", var="test_acc", expected=1, **kw):
    return claims.Claim(f"t.{folder}.{var}", "Fig. T", "a test claim.", "fig3_parity", (folder,), var, expected, **kw)


@pytest.mark.parametrize("values, expected, verdict", [
    (RISING, 1, "agrees"), (FALLING, 1, "disagrees"), (FALLING, -1, "agrees"), (NOISY, 1, "inconclusive")])
def test_trend_verdicts(tmp_path, values, expected, verdict):
    (tmp_path / "sweep").mkdir()
    store.write_atomic(_sweep(values), tmp_path / "sweep" / "results.nc")
    row = claims.ledger(tmp_path, (_claim(expected=expected),)).iloc[0]
    assert row.verdict == verdict
    assert (row.LRs, row.seeds, row.runs) == (4, 3, 12)
    if values is RISING:  # upper half minus lower half, in percentage points
        assert row.effect == pytest.approx(100 * (np.mean(RISING[2:]) - np.mean(RISING[:2])))
        assert row["rank"] == pytest.approx(1.0) and row["seed sd"] < row.effect


def test_missing_folder_is_not_run(tmp_path):
    table = claims.ledger(tmp_path, (_claim(), _claim(kind="correlation", x="max_bc_loss_ratio")))
    assert list(table.verdict) == [claims.NOT_RUN] * 2
    assert table.runs.tolist() == [0, 0] and table.effect.isna().all()


def test_unconverged_lrs_are_not_compared(tmp_path):
    ds = _sweep(RISING)
    ds["converged"][:] = np.array([[True] * 3, [True] * 3, [True] * 3, [True, False, True]])
    (tmp_path / "sweep").mkdir()
    store.write_atomic(ds, tmp_path / "sweep" / "results.nc")
    assert claims.ledger(tmp_path, (_claim(),)).iloc[0].LRs == 3


def test_correlation_rule(tmp_path):
    acc = np.asarray(RISING)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    store.write_atomic(_sweep(acc, max_bc_loss_ratio=acc * 2), tmp_path / "a" / "results.nc")
    store.write_atomic(_sweep(acc, max_bc_loss_ratio=-acc), tmp_path / "b" / "results.nc")
    up = claims.Claim("c", "Fig. 12", "s.", "fig12_13_mechanism", ("a", "missing"), "test_acc", 1,
                      kind="correlation", x="max_bc_loss_ratio")
    down = claims.Claim("d", "Fig. 12", "s.", "fig12_13_mechanism", ("b",), "test_acc", 1,
                        kind="correlation", x="max_bc_loss_ratio")
    table = claims.ledger(tmp_path, (up, down))
    assert table.verdict.tolist() == ["agrees", "disagrees"]
    assert table.loc["c", "runs"] == 12 and table.loc["c", "sweeps"] == "a"
    assert claims.correlation_verdict(0.9, claims.MIN_RUNS - 1) == "inconclusive"
    assert claims.correlation_verdict(claims.MIN_RHO / 2, 100) == "inconclusive"
    assert claims.correlation_verdict(float("nan"), 100) == "inconclusive"


def test_claims_cover_the_paper_figures():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for figure in ("Fig. 3", "Fig. 4", "Fig. 5", "Fig. 12", "Fig. 15"):
        assert any(c.figure == figure for c in claims.CLAIMS)
    spurious = next(c for c in claims.CLAIMS if c.variable == "attr_spurious")
    assert spurious.expected == -1


def test_reads_only_pages_run_after_the_chapters(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": "book/claims"}, {"file": "book/a"}, {"file": "book/b"}]}))
    (tmp_path / "book").mkdir()
    params = tmp_path / "params" / "p"
    params.mkdir(parents=True)
    for name in ("intro", "claims", "a", "b"):
        (tmp_path / "book" / f"{name}.py").write_text("")
        (params / f"{name}.yaml").write_text(yaml.safe_dump({"x": 1, **({"reads_only": True} if name == "claims" else {})}))
    ran = []
    monkeypatch.setattr(book, "execute_chapter", lambda root, chapter, p: ran.append((chapter, p)))
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: None)
    book.build_book(tmp_path, profile="p")
    assert [c for c, _ in ran] == ["book/a", "book/b", "book/intro", "book/claims"]
    assert all(p == {"x": 1} for _, p in ran)  # reads_only orders pages; the notebook never sees it
