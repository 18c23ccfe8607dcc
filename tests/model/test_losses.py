import math

import pytest

torch = pytest.importorskip("torch")

from knockoff.model.losses import CrossBatchSoftKNN, SubCenterArcFace  # noqa: E402


def test_soft_knn_matches_the_nca_formula():
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(5, 3), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 0])
    loss = CrossBatchSoftKNN(3, temperature=0.1)(embeddings, labels, torch.arange(5))
    expected = []
    for i in range(5):
        others = [j for j in range(5) if j != i]
        weights = torch.stack([torch.exp(embeddings[i] @ embeddings[j] / 0.1) for j in others])
        same = torch.tensor([labels[j] == labels[i] for j in others])
        expected.append(-torch.log(weights[same].sum() / weights.sum()))
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_soft_knn_memory_is_a_capped_queue_that_excludes_the_same_photo():
    loss_fn = CrossBatchSoftKNN(2, temperature=0.1, memory_size=3)
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss_fn(first, torch.tensor([0, 1]), torch.tensor([10, 11]))
    assert loss_fn.memory.shape == (2, 2)
    # photo 10 again, alone in its batch: its only same-class candidate is its own memory copy
    alone = loss_fn(torch.tensor([[0.9, 0.1]]), torch.tensor([0]), torch.tensor([10]))
    assert alone.item() == 0.0
    loss_fn(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), torch.tensor([0, 1]), torch.tensor([12, 13]))
    assert loss_fn.memory.shape == (3, 2) and loss_fn.memory_ids.tolist() == [12, 13, 10]


def test_soft_knn_training_makes_nearest_neighbours_share_the_class():
    torch.manual_seed(0)
    embeddings = torch.nn.Parameter(torch.randn(40, 8))
    labels = torch.arange(40) % 4
    loss_fn = CrossBatchSoftKNN(8, temperature=0.05, memory_size=64)
    optimizer = torch.optim.SGD([embeddings], lr=0.5)

    def neighbour_accuracy() -> float:
        normalized = torch.nn.functional.normalize(embeddings.detach(), dim=1)
        similarity = (normalized @ normalized.T).fill_diagonal_(-2)
        return (labels[similarity.argmax(dim=1)] == labels).float().mean().item()

    before = neighbour_accuracy()
    for step in range(150):
        batch = torch.randperm(40)[:8]
        optimizer.zero_grad()
        loss_fn(embeddings[batch], labels[batch], batch).backward()
        optimizer.step()
    assert before < 0.6 and neighbour_accuracy() == 1.0


def test_margin_makes_the_loss_larger_than_plain_softmax():
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    labels = torch.randint(0, 3, (8,))
    with_margin = SubCenterArcFace(4, 3, margin=0.3)
    without = SubCenterArcFace(4, 3, margin=0.0)
    without.weight.data.copy_(with_margin.weight.data)
    assert with_margin(embeddings, labels) > without(embeddings, labels)  # sample ids unused


def test_training_pulls_embeddings_towards_their_class():
    torch.manual_seed(0)
    embeddings = torch.nn.Parameter(torch.randn(12, 8))
    labels = torch.arange(12) % 3
    loss_fn = SubCenterArcFace(8, 3, scale=16, margin=0.2, subcenters=2)
    optimizer = torch.optim.SGD([embeddings, *loss_fn.parameters()], lr=0.5)
    first = loss_fn(embeddings, labels).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = loss_fn(embeddings, labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 4
    cosines = loss_fn.class_cosines(embeddings)
    assert (cosines.argmax(dim=1) == labels).all()
    # separated by more than the margin from the other classes
    own = cosines.gather(1, labels[:, None]).squeeze(1)
    other = cosines.masked_fill(torch.nn.functional.one_hot(labels, 3).bool(), -1).amax(dim=1)
    assert (torch.acos(other.clamp(-1, 1)) - torch.acos(own.clamp(-1, 1)) > 0.2).all()


def test_subcenters_take_the_nearest():
    loss_fn = SubCenterArcFace(2, 1, subcenters=2)
    loss_fn.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cosines = loss_fn.class_cosines(torch.tensor([[0.0, 1.0]]))
    assert cosines.item() == pytest.approx(1.0)


def test_no_nan_when_an_embedding_sits_opposite_its_class():
    loss_fn = SubCenterArcFace(2, 2, margin=0.5)
    loss_fn.weight.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss = loss_fn(torch.tensor([[-1.0, 0.0]], requires_grad=True), torch.tensor([0]))
    loss.backward()
    assert math.isfinite(loss.item())
