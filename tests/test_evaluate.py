import json

import numpy as np

from knockoff.evaluate import EvaluateConfig, cross_fitted_flagging, evaluate
from knockoff.scoring import ScorerParams
from tests.helpers import SAMPLE


def test_cross_fitted_flagging_is_honest_about_noise():
    rng = np.random.default_rng(0)
    is_fake = rng.random(2000) < 0.5
    separable = cross_fitted_flagging(np.where(is_fake, 1.0, -1.0) + 0.1 * rng.normal(size=2000), is_fake, 0.95)
    noise = cross_fitted_flagging(rng.normal(size=2000), is_fake, 0.95)
    assert separable["precision"] == 1.0 and separable["recall"] > 0.99
    assert noise["recall"] < 0.05  # a threshold fit on noise cannot find 95%-precise fakes


def test_evaluate_writes_metrics_and_plots_for_every_model(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    config = EvaluateConfig(sneakers_gallery="sneakers/train", sneakers_queries="sneakers/valid")
    results = evaluate({"finetuned": tiny_onnx, "pretrained": tiny_onnx}, config, ScorerParams(k=5), tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == results
    sneakers = results["finetuned"]["sneakers"]
    assert sneakers["queries"] == 32 and 0.0 <= sneakers["roc_auc"] <= 1.0
    assert results["finetuned"]["sneakers"] == results["pretrained"]["sneakers"]  # same model, same numbers
    assert (tmp_path / "plots" / "roc.png").stat().st_size > 1000 and (tmp_path / "plots" / "pr.png").is_file()
