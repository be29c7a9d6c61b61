"""AU-GACN: the AU graph from the training fold only, the ML-GCN adjacency, the masked joint AU loss."""

from __future__ import annotations

import pytest
import torch

from datamodules.datamodule import FeatureSet, MERDataModule
from datamodules.protocols import loso_folds
from models.au_gacn import AUGACN, co_occurrence_adjacency
from models.classifier import MERClassifier


def test_adjacency_is_the_ml_gcn_recipe_on_a_hand_example():
    # AUs 0, 1, 2 over 4 clips: 0 and 1 always together; 2 alone once; AU 1 of the last clip unknown.
    au = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    mask = torch.ones_like(au, dtype=torch.bool)
    mask[3, 1] = False
    binary, weighted = co_occurrence_adjacency(au, mask, tau=0.5, p=0.25)
    # P(1|0) = 2/3 >= 0.5, P(0|1) = 2/2 (clip 3's AU 1 is unknown, so not counted), P(2|0) = 1/3 < 0.5,
    # P(0|2) = 1/1: edges 0->1, 1->0, 2->0.
    assert binary.tolist() == [[False, True, False], [True, False, False], [True, False, False]]
    expected = torch.tensor([[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.25, 0.0, 0.75]])
    torch.testing.assert_close(weighted, expected)


def _feature_set(au: torch.Tensor, subjects: list[str]) -> FeatureSet:
    n = len(subjects)
    return FeatureSet(
        x=torch.randn(n, 2, 28, 28),
        channels=("u", "v"),
        y=torch.arange(n) % 3,
        sample_ids=[f"{s}/c{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=["synthetic"] * n,
        clips=[f"c{i}" for i in range(n)],
        classes=("negative", "positive", "surprise"),
        au=au,
        au_mask=torch.ones_like(au, dtype=torch.bool),
        au_names=("1", "4", "12", "26"),
    )


def test_the_au_graph_never_sees_the_held_out_subject():
    # AU 26 (column 3) occurs, always with AU 12, only in the held-out subject s01.
    subjects = ["synthetic/s01"] * 3 + ["synthetic/s02"] * 3 + ["synthetic/s03"] * 3
    au = torch.zeros(9, 4)
    au[:3, 2] = au[:3, 3] = 1.0
    au[3:, 0] = au[3:, 1] = 1.0
    features = _feature_set(au, subjects)
    dm = MERDataModule(features, loso_folds(subjects), fold=0, normalize="none")
    net = AUGACN(num_classes=3, in_chans=2, num_aus=4, trunk="2d", width=16, node_dim=8)
    rows = torch.as_tensor(dm.train_idx)
    net.fit_adjacency(features.au[rows], features.au_mask[rows])  # what train.py does for each fold
    assert not net.adjacency[3].any() and not net.adjacency[:, 3].any()
    assert not net.adjacency[2].any()  # AU 12 is in no training clip either
    assert net.adjacency[0, 1] and net.adjacency[1, 0]
    # Fit on every clip, the 12-26 edge is there: the check above can fail.
    net.fit_adjacency(features.au, features.au_mask)
    assert net.adjacency[2, 3] and net.adjacency[3, 2]


def test_joint_loss_counts_only_known_aus():
    net = AUGACN(num_classes=3, in_chans=2, num_aus=4, trunk="2d", width=16, node_dim=8)
    model = MERClassifier(net, torch.nn.CrossEntropyLoss(), torch.optim.Adam, au_loss_weight=1.0)
    au_logits = torch.tensor([[4.0, -4.0, 0.0, 0.0]])
    batch = {
        "au": torch.tensor([[1.0, 0.0, 1.0, 0.0]]),
        "au_mask": torch.tensor([[True, True, False, False]]),
    }
    known = torch.nn.functional.binary_cross_entropy_with_logits(au_logits[0, :2], batch["au"][0, :2])
    torch.testing.assert_close(model.au_loss(au_logits, batch), known)
    # A wrong target on an unknown AU changes nothing.
    batch["au"][0, 2] = 0.0
    torch.testing.assert_close(model.au_loss(au_logits, batch), known)
    # Nothing known: no loss (not NaN).
    batch["au_mask"][:] = False
    assert model.au_loss(au_logits, batch) == 0


def test_training_step_trains_the_au_head_through_the_joint_loss():
    torch.manual_seed(0)
    net = AUGACN(num_classes=3, in_chans=2, num_aus=4, trunk="2d", width=16, node_dim=8)
    au = (torch.rand(8, 4) < 0.5).float()
    net.fit_adjacency(au, torch.ones_like(au, dtype=torch.bool))
    model = MERClassifier(net, torch.nn.CrossEntropyLoss(), torch.optim.Adam, au_loss_weight=1.0)
    batch = {"x": torch.randn(8, 2, 28, 28), "y": torch.arange(8) % 3, "au": au}
    batch["au_mask"] = torch.ones_like(au, dtype=torch.bool)
    model.training_step(batch, 0).backward()
    assert net.au_head.weight.grad.abs().sum() > 0
    try:
        MERClassifier(
            torch.nn.Linear(2, 3), torch.nn.CrossEntropyLoss(), torch.optim.Adam, au_loss_weight=1.0
        )
    except ValueError as error:
        assert "predicts AUs" in str(error)
    else:
        raise AssertionError("a network without AU logits was accepted with au_loss_weight > 0")


def test_a_batch_of_graphs_one_per_clip():
    net = AUGACN(num_classes=5, in_chans=1, num_aus=6, trunk="3d", width=16, node_dim=8).eval()
    net.fit_adjacency((torch.rand(20, 6) < 0.5).float(), torch.ones(20, 6, dtype=torch.bool))
    x = torch.randn(3, 5, 1, 20, 20)
    graphs = net._graphs(torch.zeros(3, 6, 8))
    assert graphs.num_graphs == 3 and graphs.num_nodes == 18
    logits, au_logits = net.forward_with_aus(x)
    assert logits.shape == (3, 5) and au_logits.shape == (3, 6)
    # Each clip's graph is its own: one clip's output does not depend on the others in the batch.
    with torch.no_grad():
        torch.testing.assert_close(net(x[:1]), net(x)[:1], rtol=1e-5, atol=1e-5)


def test_generative_augmentation_learns_from_the_training_subjects_only():
    from datamodules.au_generative import AUGenerativeAugment

    subjects = ["synthetic/s01"] * 4 + ["synthetic/s02"] * 6 + ["synthetic/s03"] * 6
    au = torch.zeros(16, 4)
    au[:4, 3] = 1.0  # AU 26 only in the held-out subject
    au[4:, 0] = 1.0
    au[10:, 1] = 1.0
    features = _feature_set(au, subjects)
    features.x[:4] += 1000.0  # and a pixel pattern only it has
    augment = AUGenerativeAugment(ratio=2.0, epochs=20, batch_size=8)
    dm = MERDataModule(
        features, loso_folds(subjects), fold=0, normalize="none", generative_augment=augment, batch_size=64
    )
    dm.setup("fit")
    generated = dm._train_set
    assert len(generated) == 12 + 24 and augment.model is None  # the data module fitted its own copy
    x_new, au_new = generated.x[12:], generated.au[12:]
    assert x_new.abs().max() < 100  # nothing of the held-out subject's +1000
    assert not au_new[:, 3].any()  # no AU 26: only AU combinations of the training clips
    assert {tuple(r) for r in au_new.tolist()} <= {tuple(r) for r in au[4:].tolist()}
    assert set(generated.subjects[12:]) == {"generated"}
    batches = list(dm.train_dataloader())
    assert sum(len(b["y"]) for b in batches) == 36
    assert all(not sid.startswith("synthetic/s01") for b in batches for sid in b["sample_id"])
    # Test batches are the held-out subject's real clips only.
    assert [s for b in dm.test_dataloader() for s in b["sample_id"]] == features.sample_ids[:4]


def test_generative_augmentation_needs_au_targets_and_one_input():
    from datamodules.au_generative import AUGenerativeAugment, extended_training_rows

    x = torch.randn(6, 2, 4, 4)
    with pytest.raises(ValueError, match="action_units"):
        AUGenerativeAugment().fit(x, None, None)
    with pytest.raises(ValueError, match="one input"):
        extended_training_rows({"a": x, "b": x}, torch.zeros(6), None, None, [0, 1], AUGenerativeAugment())
