"""The Fig. 4 chapter executed end to end by papermill, with tiny sweeps on real MNIST/CIFAR-10."""
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from lrsc import report, store
from lrsc.book import execute_chapter

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("LRSC_DATA", "")

pytestmark = pytest.mark.skipif(not (Path(DATA) / "MNIST").is_dir() or not (Path(DATA) / "cifar-10-batches-py").is_dir(),
                                reason="needs LRSC_DATA with MNIST and CIFAR-10 (e.g. shared/data)")


def _tiny_sweep(dataset: str) -> dict:
    return {
        "dataset": dataset,
        "dataset_params": {"rho": 0.1, "n_train": 300, "n_test": 200},
        "model": "fcn",
        "model_params": {"depth": 2, "width": 16},
        "train": {"batch_size": 100, "max_steps": 150, "eval_every": 15},
        "metrics": {"n_act": 50, "n_attr": 20, "ig_steps": 4, "prune_fractions": [0.2, 0.5]},
        "grid": {"lr": [0.3, 1.0], "seed": [0, 1]},
    }


def _glued(nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{name: text/plain}`` of every value the notebook glued."""
    glued = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "scrapbook" in out.get("metadata", {}):
                record = out["metadata"]["scrapbook"]
                glued[record["name"]] = out["data"][record["mime_prefix"] + "text/plain"]
    return glued


def test_fig4_chapter_executes_with_tiny_sweeps(tmp_path, monkeypatch):
    monkeypatch.setenv("LRSC_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "project"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "fig4_datasets.py", root / "book")
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/fig4_datasets"}))
    params = root / "params" / "tiny"
    params.mkdir(parents=True)
    sweeps = []
    for dataset in ("colored_mnist", "double_mnist"):
        (params / f"fig4_{dataset}_fcn.yaml").write_text(yaml.safe_dump(_tiny_sweep(dataset)))
        sweeps.append(f"params/tiny/fig4_{dataset}_fcn.yaml")
    settings = _tiny_sweep("colored_mnist")
    settings["grid"] = {"dataset_params.rho": [0.02, 0.05], "lr": [0.3, 1.0], "seed": [0]}
    (params / "fig4_settings.yaml").write_text(yaml.safe_dump(settings))

    nb = nbformat.read(execute_chapter(root, "book/fig4_datasets", {
        "sweep_params": sweeps, "settings_params": "params/tiny/fig4_settings.yaml", "n_samples": 4,
        "results_dir": "results/tiny"}), as_version=4)

    figures = sum(key.endswith("image/png") for cell in nb.cells for out in cell.get("outputs", [])
                  for key in out.get("data", {}))
    assert figures == 3  # glued: the samples, the corruptions, the metrics grid (a row per sweep)
    # Glued numbers are the run's own.
    ds = store.load(root / "results" / "tiny" / "fig4_colored_mnist_fcn" / "results.nc")
    glued = _glued(nb)
    assert glued["colored_mnist_fcn_hi_prune"] == repr(report.lr_effect(ds)["hi_prune"])
    assert glued["colored_mnist_fcn_n_train"] == "300"
    assert "settings_acc_gain_0p05" in glued
    assert glued["n_sweeps"] == "2" and "colored_mnist / fcn: accuracy" in glued["fig4_per_sweep"]
