"""Every experiment composes, and its features and network build and fit together."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
GROUP_OPTIONS = {
    group: sorted(p.stem for p in (ROOT / "configs" / group).glob("*.yaml"))
    for group in ("data", "features", "model", "trainer", "logger")
}


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_builds_features_and_network(experiment):
    cfg = _compose([f"experiment={experiment}"])
    assert cfg.experiment_name == experiment
    spec = instantiate(cfg.features)
    net = instantiate(cfg.model.net, num_classes=3, in_chans=spec.num_channels)
    loss = instantiate(cfg.model.loss)(class_counts=torch.tensor([5, 3, 2]))
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    x = torch.zeros(4, spec.num_channels, *spec.size)
    logits = net(x)
    assert logits.shape == (4, 3)
    loss(logits, torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_every_group_option_composes(group, option):
    cfg = _compose([f"{group}={option}"])
    assert cfg[group] is not None


def test_model_net_nodes_build_on_their_own():
    from omegaconf import OmegaConf

    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        net = instantiate(OmegaConf.load(path).net)
        assert isinstance(net, torch.nn.Module), path.name


def test_cpu_trainer_instantiates():
    cfg = _compose([])
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    assert _compose(["trainer=gpu"]).trainer.precision == "16-mixed"
    assert _compose(["trainer=gpu_bf16"]).trainer.precision == "bf16-mixed"
