import numpy as np
import pytest

torch = pytest.importorskip("torch")

from knockoff.model.training import _group_sampler  # noqa: E402


@pytest.mark.parametrize("sampling", ["all", "weighted", "one"])
def test_how_often_an_epoch_draws_each_photograph(sampling):
    keys = np.array(["a"] * 8 + ["b"] * 2 + ["c"])  # one shot copied eight times, one twice, one alone
    sampler = _group_sampler(keys, sampling, torch.Generator().manual_seed(0))
    draws = [keys[i] for _ in range(2000) for i in sampler]
    share = {key: draws.count(key) / len(draws) for key in "abc"}
    expected = {"all": {"a": 8 / 11, "b": 2 / 11, "c": 1 / 11}, "weighted": {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3},
                "one": {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}}[sampling]
    assert share == pytest.approx(expected, abs=0.02)
    assert len(sampler) == (11 if sampling == "all" else 3)  # weighted: one draw per photograph


def test_an_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="group_sampling"):
        _group_sampler(np.array(["a"]), "twice", torch.Generator())
