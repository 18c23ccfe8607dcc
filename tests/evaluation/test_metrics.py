import numpy as np
import pytest
from sklearn import metrics as sk

from knockoff.evaluation.metrics import average_precision, recall_at_precision, roc_auc


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [1, 6])  # coarse scores have many ties
def test_agrees_with_scikit_learn(seed, decimals):
    rng = np.random.default_rng(seed)
    labels = rng.random(400) < 0.35
    scores = np.round(rng.normal(labels * 1.2, 1.0), decimals)
    precision, recall, _ = sk.precision_recall_curve(labels, scores)
    assert roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)
    assert recall_at_precision(labels, scores, 0.8) == pytest.approx(recall[precision >= 0.8].max())


def test_perfect_and_reversed_rankings():
    labels = np.array([0, 0, 1, 1], bool)
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert recall_at_precision(labels, np.array([0.9, 0.8, 0.2, 0.1]), 0.95) == 0.0


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc(np.ones(3, bool), np.arange(3.0))
