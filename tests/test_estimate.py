"""``lrsc plan`` on the full profile: every declared sweep's run count and step caps read back
from the params files, without building a model or reading data."""
import math
from pathlib import Path

import pytest
import yaml

import lrsc
from lrsc import sweeplist
from lrsc.book import profile_chapters
from lrsc.cli import main
from lrsc.errors import ConfigError
from lrsc.estimate import plan_profile
from lrsc.settings import TrainSettings

ROOT = Path(lrsc.__file__).resolve().parents[1]


def _expected_runs(s: sweeplist.Sweep) -> int:
    """The runs of a declared sweep, counted from its params file and its changes: one per point of
    its grid, an LR axis to the edge of stability counted as its ``n`` LRs and the unstable one,
    and a sweep that takes its LRs from another at two LRs."""
    grid = dict(yaml.safe_load(s.params.read_text())["grid"])
    grid.update({key.removeprefix("grid."): value for key, value in s.changes.items() if key.startswith("grid.")})
    lr = grid.pop("lr", None)
    if s.lrs_of:
        n_lr = 2
    elif isinstance(lr, dict):
        n_lr = lr["n"] + 1
    else:
        n_lr = len(lr) if lr else 1
    return n_lr * math.prod(len(values) for values in grid.values())


def _expected_cap(s: sweeplist.Sweep, lr: float) -> int:
    train = {**yaml.safe_load(s.params.read_text()).get("train", {}),
             **{key.removeprefix("train."): v for key, v in s.changes.items() if key.startswith("train.")}}
    max_steps, cap_lr = train.get("max_steps", TrainSettings().max_steps), train.get("cap_lr", 0.0)
    return max_steps if not cap_lr or lr >= cap_lr else math.ceil(round(max_steps * cap_lr / lr, 6))


def test_full_profile_plan_counts_every_declared_run(capsys, tmp_path, monkeypatch):
    # the Fig. 8 sweeps name DeepLabV3 weights in a local file (relative to where lrsc runs), which
    # this machine lacks: those sweeps are not planned, and the plan says so
    monkeypatch.chdir(tmp_path)
    lacking = plan_profile(ROOT, "full", steps=0)
    assert {r.chapter for r in lacking.runs} and "fig8_10_11_standard" not in {r.chapter for r in lacking.runs}
    assert any(n.startswith("fig8_10_11_standard/") and "deeplab" in n for n in lacking.skipped.values())
    weights = tmp_path / "weights" / "deeplabv3_resnet50_coco-cd0a2569.pth"  # only its existence is checked
    weights.parent.mkdir()
    weights.touch()
    plan = plan_profile(ROOT, "full", steps=0)
    assert not plan.skipped
    names, params_dir, _ = profile_chapters(ROOT, "full")
    declared = [s for c in names for s in sweeplist.declared(ROOT, c, sweeplist.given_parameters(params_dir, c))]
    assert len(declared) > 40  # Fig. 4 alone sweeps 20 dataset x model pairs
    by_sweep: dict[tuple[str, str], list] = {}
    for r in plan.runs:
        by_sweep.setdefault((r.chapter, r.sweep), []).append(r)
    for s in declared:
        runs = by_sweep[(s.chapter, s.folder)]
        assert len(runs) == _expected_runs(s), (s.chapter, s.folder)
        for r in runs:
            assert r.cap == _expected_cap(s, r.config["train"]["lr"]), (s.chapter, s.folder, r.point)
    assert set(by_sweep) == {(s.chapter, s.folder) for s in declared}
    hp = by_sweep[("fig6_hyperparameters", "hp_momentum")]  # the chapter's own changes: one LR, its range, its seeds
    assert {r.config["train"]["lr"] for r in hp} == {0.001} and len(hp) == 5 * 3
    assert not plan.timings and len(plan.unique()) == len({r.hash for r in plan.runs})

    assert main(["plan", "--profile", "full", "--no-time", "--root", str(ROOT)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"profile full: {len(plan.unique())} runs")
    assert "the paper: 400 hours on 4 NVIDIA A100-PCIE-40GB GPUs" in shown
    for chapter in {s.chapter for s in declared}:
        assert chapter in shown


def test_bad_plan_options_exit_2(capsys):
    assert main(["plan", "--profile", "huge", "--root", str(ROOT)]) == 2
    assert "profile 'huge' lacks parameter files" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no chapter 'nope'"):
        plan_profile(ROOT, "quick", only=["nope"])
    with pytest.raises(ConfigError, match="--time-steps must be at least 0"):
        plan_profile(ROOT, "quick", steps=-1)
