import json

import numpy as np

from knockoff.evaluation.evaluate import EvaluateConfig, cross_fitted_flagging, evaluate
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


def test_a_regressed_model_fails_after_writing_its_report(tiny_onnx, tmp_path, monkeypatch):
    import pytest

    from knockoff.evaluation.evaluate import RegressionError, compare

    good = {"model_version": "old", "sneakers": {"roc_auc": 0.99, "average_precision": 0.98}}
    worse = {"model_version": "new", "sneakers": {"roc_auc": 0.95, "average_precision": 0.975}}
    comparison = compare(worse, good, EvaluateConfig(regression_tolerance=0.01))
    assert comparison["regressed"] == ["roc_auc"] and comparison["difference"]["average_precision"] == pytest.approx(-0.005)
    assert compare(good, worse, EvaluateConfig())["regressed"] == []

    # end to end: the same model compared with itself never regresses...
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    config = EvaluateConfig(sneakers_gallery="sneakers/train", sneakers_queries="sneakers/valid")
    results = evaluate({"finetuned": tiny_onnx}, config, ScorerParams(k=5), tmp_path, previous=tiny_onnx)
    assert results["comparison"]["regressed"] == [] and results["comparison"]["difference"]["roc_auc"] == 0.0
    # ...but with a negative tolerance any difference (even none) counts, and the stage fails
    strict = EvaluateConfig(sneakers_gallery="sneakers/train", sneakers_queries="sneakers/valid", regression_tolerance=-0.5)
    with pytest.raises(RegressionError, match="worse than"):
        evaluate({"finetuned": tiny_onnx}, strict, ScorerParams(k=5), tmp_path / "strict", previous=tiny_onnx)
    assert (tmp_path / "strict" / "metrics.json").is_file()  # the report is written before failing


def test_model_at_revision_reads_committed_files(tmp_path, monkeypatch):
    from pathlib import Path

    from knockoff.evaluation.evaluate import model_at_revision
    from tests.helpers import REPO

    monkeypatch.chdir(REPO)
    found = model_at_revision(Path("params.yaml"), "HEAD", tmp_path / "p.yaml")
    assert found is not None and b"prepare:" in found.read_bytes()
    assert model_at_revision(Path("models/never-committed.onnx"), "HEAD", tmp_path / "x") is None


def test_every_sneakers_figure_is_given_for_new_photographs_and_apart_for_copies(tiny_onnx, tmp_path, monkeypatch):
    from knockoff.data.groups import PhotographGroups, write_groups

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    train = sorted(p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "sneakers/train/images").glob("*.jpg"))
    valid = sorted(p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "sneakers/valid/images").glob("*.jpg"))
    # the first twelve valid photos share a group with a train photo: copies of training photographs
    paths = train + valid
    group = np.array(list(range(len(train))) + [i if i < 12 else len(train) + i for i in range(len(valid))])
    write_groups(PhotographGroups(paths, group, 0, 12), paths, [None] * len(paths), tmp_path / "groups.parquet")
    config = EvaluateConfig(sneakers_gallery="sneakers/train", sneakers_queries="sneakers/valid",
                            groups=str(tmp_path / "groups.parquet"))
    sneakers = evaluate({"finetuned": tiny_onnx}, config, ScorerParams(k=5), tmp_path / "out")["finetuned"]["sneakers"]
    assert sneakers["queries"] == 20 and sneakers["copies"]["queries"] == 12
    assert sneakers["photographs"] == 20 and "roc_auc" in sneakers
