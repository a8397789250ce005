"""The benchmark runs end to end on a tiny case and reports every headline ratio."""
import json

import pytest
import torch

from benchmarks import run as bench


def test_benchmark_reports_its_ratios(tmp_path, monkeypatch):
    tiny = [bench.Case("parity 16-200-200-2", 24, 3, (16,), 8, 2, 300),
            bench.Case("parity, momentum", 4, 3, (16,), 8, 2, 300, sgd=(("momentum", 0.9), ("l1", 1e-5))),
            bench.Case("Colored-MNIST size", 2, 2, (3, 28, 28), 8, 10, 200),
            bench.Case("CNN", 8, 2, (3, 28, 28), 0.125, 10, 100, "cnn")]
    monkeypatch.setattr(bench, "cases", lambda quick: tiny)
    monkeypatch.setattr(bench, "matmul_flops", lambda size=2000, device="cpu": 1e9)
    out = tmp_path / "bench.json"
    bench.main(["--repeats", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    for key in ("batched_speedup_parity_m24", "flops_fraction", "data_path_speedup",
                "speedup_at_matmul_peak_parity_m24", "wide_products_of_peak", "hot_product_of_peak",
                "batched_speedup_cnn_m8_w0125", "cnn_flops_fraction", "channels_last_speedup_cnn_w0125",
                "batched_speedup_parity_m4_sgd_settings"):
        assert report[key] > 0
    shares = [report[f"step_share_{k}"] for k in ("wide", "thin", "other")]
    assert all(share > 0 for share in shares) and sum(shares) == pytest.approx(1.0)
    assert report["repeats"] == 2 and report["device"] == "cpu"
    # a bias-free FCN's arithmetic ignores its batch-mates; a CNN's may not
    assert report["batch_mate_weight_diff_fcn"] == 0 and report["batch_mate_weight_diff_cnn"] >= 0
    rows = {r["benchmark"]: r for r in report["rows"]}
    assert len(rows) == 7  # four training cases, the CNN's two layouts, two data paths
    parity = rows["parity 16-200-200-2, M=24, 3 steps"]
    # the headline ratio is that of the median times; over two rounds the medians are the means,
    # so that ratio lies between the two rounds' own ratios
    assert parity["baseline (s)"] / parity["lrsc (s)"] == pytest.approx(parity["speedup"])
    assert parity["speedup min"] <= parity["speedup"] <= parity["speedup max"]


def test_benchmark_rejects_zero_repeats(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--repeats", "0"])
    assert exit_info.value.code == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err


def test_benchmark_rejects_a_missing_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err
