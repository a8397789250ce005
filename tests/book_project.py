"""A copy of the book with a 'tiny' profile: every chapter, with sweeps small enough for the tests.

The chapters that read real MNIST / CIFAR-10 (Fig. 4, Fig. 8/10/11) are in the table of contents
only where ``LRSC_DATA`` holds them; every other chapter always is.
"""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import replace
from pathlib import Path

import yaml

from conftest import TINY_PARITY

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LRSC_DATA", "/nonexistent"))
HAS_IMAGES = (DATA / "MNIST").is_dir() and (DATA / "cifar-10-batches-py").is_dir()
SEEDS = [0, 1, 2]


def _sweep(title: str, **changes) -> dict:
    cfg = copy.deepcopy(TINY_PARITY)
    cfg["title"] = title
    cfg["grid"]["seed"] = SEEDS
    for key, value in changes.items():
        cfg[key] = value
    return cfg


def _image(dataset: str, title: str) -> dict:
    return _sweep(title, dataset=dataset, dataset_params={"rho": 0.1, "n_train": 300, "n_test": 200},
                  model_params={"depth": 2, "width": 16},
                  train={"batch_size": 100, "max_steps": 400, "eval_every": 20})


def sweeps() -> dict[str, dict]:
    """The tiny sweep files, by name."""
    parity = _sweep("tiny parity")
    parity["metrics"]["snapshot_steps"] = [0, 20, 100]
    parity["grid"]["lr"] = {"edge": True, "start": 1.0, "factor": 4, "n": 2}  # the paper's protocol, probed
    parity["train"]["cap_lr"] = 1.0
    out = {
        "parity": parity,
        "baselines_parity": _sweep("tiny parity, baselines task", grid={"lr": [0.25, 1.0], "seed": SEEDS}),
        "settings": _sweep("tiny parity, data settings", grid={"dataset_params.rho": [0.1, 0.3], "lr": [0.3, 1.0],
                                                               "seed": SEEDS}),
        "moon_star": _sweep("tiny moon-star", dataset="moon_star",
                            dataset_params={"rho": 0.1, "image_size": 12, "n_train": 200, "n_test": 200}),
        "vit": _sweep("tiny moon-star, small ViT + AdamW", dataset="moon_star",
                      dataset_params={"rho": 0.1, "image_size": 16, "n_train": 200, "n_test": 200},
                      model="vit_small", model_params={"patch_size": 8, "depth": 1, "width": 16, "heads": 2},
                      train={"optimizer": "adamw", "weight_decay": 0.01, "batch_size": 50, "max_steps": 300,
                             "eval_every": 20}, grid={"lr": [0.003, 0.01], "seed": SEEDS}),
    }
    if HAS_IMAGES:
        out["fig4_colored_mnist_fcn"] = _image("colored_mnist", "tiny Colored MNIST, FCN")
        out["fig4_double_mnist_fcn"] = _image("double_mnist", "tiny Double MNIST, FCN")
        settings = _image("colored_mnist", "tiny Colored MNIST, data settings")
        settings["grid"] = {"dataset_params.rho": [0.02, 0.05], "lr": [0.3, 1.0], "seed": SEEDS}
        out["fig4_settings"] = settings
        out["cifar"] = _sweep("tiny CIFAR-10, CNN", dataset="cifar10",
                              dataset_params={"n_train": 20, "n_test": 50, "test_from_train": 100},
                              model="cnn", model_params={"width": 0.0625},
                              train={"batch_size": 10, "max_steps": 400, "eval_every": 10},
                              metrics={"n_act": 50, "n_attr": 10, "ig_steps": 4, "bg_mask": "grabcut",
                                       "prune_fractions": [0.2, 0.5]},
                              grid={"lr": [0.03, 0.06], "seed": SEEDS})
    return out


def chapters() -> dict[str, dict]:
    """Each chapter's parameters in the tiny profile."""
    p = "params/tiny"
    images = [f"{p}/fig4_colored_mnist_fcn.yaml", f"{p}/fig4_double_mnist_fcn.yaml"] if HAS_IMAGES else []
    common = {"results_dir": "results/tiny"}
    out = {
        "intro": common, "claims": {**common, "order": "reads"},
        "fig3_parity": {**common, "parity_params": f"{p}/parity.yaml", "moon_star_params": f"{p}/moon_star.yaml",
                        "settings_params": f"{p}/settings.yaml"},
        "fig5_representations": {**common, "sweep_params": [f"{p}/parity.yaml", *images], "order": "reuses"},
        "fig6_hyperparameters": {**common, "sweep_params": f"{p}/parity.yaml", "small_lr": 0.25, "high_lr": 1.0,
                                 "ranges": {"momentum": [0.0, 0.5], "asam_rho": [0.0, 0.1]},
                                 "l2_values": [0.0, 1e-3], "hp_seeds": SEEDS},
        "fig7_naturalistic": {**common, "sweep_params": [f"{p}/vit.yaml"]},
        "fig12_13_mechanism": {**common, "sweep_params": [f"{p}/parity.yaml", f"{p}/moon_star.yaml"],
                               "dynamics_params": f"{p}/parity.yaml", "smooth": 2, "n_batch": 100,
                               "alphas": [1, 10], "order": "reuses"},
        "baselines": {**common, "tasks": [f"{p}/baselines_parity.yaml"], "val_frac": 0.3, "profiles": ["tiny"],
                      "methods": {"jtt": {"train.jtt_steps": 20, "train.jtt_up": 5.0}, "lff": {},
                                  "group_dro": {"train.dro_eta": 0.1}}},
        "performance": {**common, "quick": True, "threads": 1, "repeats": 1, "order": "alone"},
        "supplement_schemes": {**common, "sweep_params": f"{p}/parity.yaml", "scheme_seeds": SEEDS,
                               "schemes": {"adam": {"label": "Adam", "overrides": {
                                   "train.optimizer": "adam", "grid.lr": [0.001, 0.01]}}},
                               "switch_lrs": [1.0, 0.25], "switch_steps": [20, 60]},
    }
    if HAS_IMAGES:
        out["fig4_datasets"] = {**common, "sweep_params": images, "settings_params": f"{p}/fig4_settings.yaml",
                                "n_samples": 4}
        out["fig8_10_11_standard"] = {**common, "sweep_params": [f"{p}/cifar.yaml"], "maps_sweep": f"{p}/cifar.yaml",
                                      "n_maps": 2}
    return out


ORDER = ("intro", "claims", "definitions", "fig3_parity", "fig4_datasets", "fig5_representations",
         "fig6_hyperparameters", "fig7_naturalistic", "fig8_10_11_standard", "fig12_13_mechanism",
         "supplement_schemes", "baselines", "performance", "scaling_out")


def make(root: Path) -> Path:
    """Write the tiny project under ``root``; returns its folder."""
    project = root / "project"
    shutil.copytree(ROOT / "book", project / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    shutil.copy(ROOT / "_config.yml", project)
    params = chapters()
    pages = [name for name in ORDER if name in params or not (ROOT / "book" / f"{name}.py").exists()
             or name == "definitions"]
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": f"book/{n}"} for n in pages[1:]]}
    (project / "_toc.yml").write_text(yaml.safe_dump(toc))
    folder = project / "params" / "tiny"
    folder.mkdir(parents=True)
    for name, cfg in {**sweeps(), **params}.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    _store_benchmark(project / "results" / "tiny" / "benchmark.json", params["performance"])
    return project


def _store_benchmark(path: Path, page: dict) -> None:
    """Benchmark results for the Performance page to read, as an earlier build would have stored
    them: the quick benchmark's cases at two steps each (its measuring is tested on its own)."""
    from lrsc.bench import default_cases, run, stored

    cases = [replace(c, steps=2, n_train=min(c.n_train, 300)) for c in default_cases(page["quick"])]
    rows, summary = run(page["quick"], page["threads"], page["repeats"], training_cases=cases)
    stored.save(path, stored.identity(page["quick"], page["threads"], page["repeats"]), rows, summary)
