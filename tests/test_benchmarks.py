"""The benchmark (lrsc.bench): it runs end to end on tiny cases, reports every headline ratio,
compares like with like, and keeps its results for later book builds."""
import json
import math

import pytest
import torch

from lrsc.bench import Case, runner, stored
from lrsc.bench.__main__ import main
from lrsc.bench.cases import step_flops, time_training
from lrsc.bench.datapath import time_data_path
from lrsc.bench.overhead import lrsc_sgd, plain_sgd, tiny_data, tiny_model

TINY = [Case("parity", 24, 3, (16,), 8, 2, 300),
        Case("parity", 4, 3, (16,), 8, 2, 300, sgd=(("momentum", 0.9), ("l1", 1e-5))),
        Case("Colored-MNIST size", 2, 2, (3, 28, 28), 8, 10, 200),
        Case("Colored-MNIST size", 8, 2, (3, 28, 28), 0.125, 10, 100, "cnn")]
KEYS = ("device", "threads", "matmul_gflops", "matmul_size", "repeats", "seconds", "parity_layers", "parity_width",
        "parity_models", "parity_step_mflop", "hot_product_of_peak", "step_share_wide", "step_share_thin",
        "step_share_other", "wide_products_of_peak", "batched_speedup_parity_m24", "batched_speedup_parity_m24_range",
        "batched_speedup_parity_m4_sgd_settings", "batched_speedup_parity_m4_sgd_settings_range", "flops_fraction",
        "sequential_flops_fraction", "speedup_at_matmul_peak_parity_m24", "batched_speedup_cnn_m8_w0125",
        "batched_speedup_cnn_m8_w0125_range", "cnn_flops_fraction", "cnn_flops_width",
        "channels_last_speedup_cnn_w0125", "channels_last_speedup_cnn_w0125_range", "one_model_overhead", "one_model_overhead_range", "one_model_overhead_fcn",
        "one_model_overhead_fcn_range", "one_model_layers", "one_model_steps", "one_model_rounds",
        "one_model_samples", "batch_size",
        "data_path_speedup", "data_path_speedup_cmnist", "batch_mate_weight_diff_fcn", "batch_mate_weight_diff_cnn",
        "batch_mate_steps", "rows")


def test_benchmark_reports_its_ratios(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "default_cases", lambda quick: TINY)
    monkeypatch.setattr(runner, "matmul_flops", lambda size=2000, device="cpu": 1e9)
    out = tmp_path / "bench.json"
    main(["--quick", "--repeats", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report) == set(KEYS)
    assert report["repeats"] == 2 and report["device"] == "cpu" and report["matmul_gflops"] == 1
    # the FLOP count is the hand count: 2 per weight of 16-8-8-2, 3 passes, batch 100
    assert report["parity_layers"] == "16-8-8-2"
    assert report["parity_step_mflop"] * 1e6 == 3 * 100 * 2 * (16 * 8 + 8 * 8 + 8 * 2)
    assert sum(report[f"step_share_{k}"] for k in ("wide", "thin", "other")) == pytest.approx(1.0)
    # a bias-free FCN's arithmetic ignores its batch-mates, alone or in a stack of four
    assert report["batch_mate_weight_diff_fcn"] == 0
    assert math.isfinite(report["one_model_overhead"]) and math.isfinite(report["one_model_overhead_fcn"])
    rows = {r["benchmark"]: r for r in report["rows"]}
    assert list(rows) == [
        "parity 16-8-8-2, M=24, 3 steps", "parity 16-8-8-2, momentum 0.9 + L1, M=4, 3 steps",
        "Colored-MNIST size 2352-8-8-10, M=2, 2 steps", "Colored-MNIST size CNN width 0.125, M=8, 2 steps",
        "CNN width 0.125, one model, time per step of 2: contiguous (baseline) vs channels_last",
        "one model, 10-32-2 MLP with bias, lrsc.train's loop, 300 steps: plain torch loop (baseline) vs "
        "lrsc.train.train",
        "one model, 10-32-2 bias-free FCN, the stacked kernel, 300 steps: plain torch loop (baseline) vs "
        "lrsc.train.train",
        "data path: one epoch of 10000 parity samples, batch 100",
        "data path: one epoch of 10000 Colored-MNIST size samples, batch 100"]
    parity = rows["parity 16-8-8-2, M=24, 3 steps"]
    assert parity["speedup"] == report["batched_speedup_parity_m24"] == parity["baseline (s)"] / parity["lrsc (s)"]
    assert report["one_model_overhead"] == pytest.approx(1 / rows[next(k for k in rows if "MLP" in k)]["speedup"])
    printed = capsys.readouterr().out
    assert "parity 16-8-8-2, M=24, 3 steps" in printed and "one model's training time" in printed


# Which way is faster is the benchmark's finding (a ratio, measured on an idle machine), not a
# test's: these check that each timing is taken and record it in the test report.
def test_the_data_path_timings_are_taken(record_property):
    ours, theirs = time_data_path(10000, (16,))
    assert 0 < ours < float("inf") and 0 < theirs < float("inf")
    record_property("data_path_speedup", theirs / ours)


def test_the_batched_training_timings_are_taken(record_property):
    sequential, batched, _ = time_training(Case("parity", 24, 20, (16,), 8, 2, 300), 3, torch.device("cpu"))
    assert 0 < batched < float("inf") and 0 < sequential < float("inf")
    record_property("batched_speedup_parity_m24", sequential / batched)


def test_the_overhead_case_compares_like_with_like():
    """lrsc's loop and the plain loop take the same SGD steps on the same minibatches."""
    data = tiny_data()
    for bias in (True, False):
        ours, theirs = tiny_model(bias), tiny_model(bias)
        lrsc_sgd(ours, data, 30)
        plain_sgd(theirs, data, 30)
        moved = max((p - q).abs().max().item() for p, q in zip(ours.parameters(), tiny_model(bias).parameters()))
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert (p - q).abs().max().item() < 1e-3 * moved  # float32 rounding only, far below the steps taken


def test_step_flops_counts_two_per_weight_and_three_passes():
    case = Case("parity", 1, 1, (16,), 200, 2, 100)
    assert case.layers == "16-200-200-2"
    assert step_flops(case) == 3 * 100 * 2 * (16 * 200 + 200 * 200 + 200 * 2)


def test_stored_results_are_reused_only_for_the_same_run(tmp_path, monkeypatch):
    path = tmp_path / "results" / "benchmark.json"
    want = stored.identity(quick=True, threads=2, repeats=3)
    assert stored.load(path, want) is None
    record = stored.save(path, want, [{"benchmark": "x", "speedup": 2.0}], {"threads": 2})
    assert stored.load(path, want) == record == json.loads(path.read_text())
    assert set(want) == {"format", "lrsc_version", "host", "cpus", "threads", "quick", "repeats"}
    for key, other in (("quick", False), ("threads", 1), ("repeats", 5), ("host", "elsewhere"), ("cpus", 999),
                       ("lrsc_version", "0.0.0"), ("format", stored.FORMAT - 1)):
        assert stored.load(path, {**want, key: other}) is None
    path.write_text("{not json")
    assert stored.load(path, want) is None


def test_run_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        runner.run(repeats=0)


def test_benchmark_rejects_zero_repeats(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--repeats", "0"])
    assert exit_info.value.code == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err


def test_benchmark_rejects_a_missing_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err


def test_a_layout_finding_needs_every_round_on_one_side():
    summary = {"channels_last_speedup_cnn_w0125_range": (0.8, 0.95), "channels_last_speedup_cnn_w025_range": (0.9, 1.2)}
    said = runner.layout_says(summary)
    assert said.startswith("slower at width 0.125; neither clearly faster nor slower at width 0.25 (")
    summary["channels_last_speedup_cnn_w025_range"] = (0.7, 0.99)
    assert runner.layout_says(summary).startswith("slower at widths 0.125 and 0.25 (")
    assert runner.ratio_says(1.01, 1.3) == "faster"
