"""Paired macro and micro batches for domain-adversarial training (EMR): one fold of the micro database plus
a macro-expression source that is in every fold's training set.

Training batches are `{"micro": batch, "macro": batch}` from Lightning's `CombinedLoader` (max_size_cycle:
an epoch is the longer loader's length and the shorter one cycles), each served and transformed by its own
MERDataModule: the micro one is fold k of the LOSO protocol (its statistics and anything else learned come
from its training subjects only), the macro one holds every macro sample for training and none for testing.
Testing is the micro fold's held-out subject alone, with the deterministic test transforms.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities import CombinedLoader

from datamodules.datamodule import MERDataModule

MICRO, MACRO = "micro", "macro"


class PairedDataModule(L.LightningDataModule):
    def __init__(self, micro: MERDataModule, macro: MERDataModule) -> None:
        super().__init__()
        if macro.test_idx:
            raise ValueError("the macro source must be all training data (a fold that holds no subject out)")
        if micro.classes != macro.classes:
            raise ValueError(
                f"the macro source's classes {macro.classes} are not the micro protocol's {micro.classes}"
            )
        if micro.inputs != macro.inputs:
            raise ValueError(f"the macro source has inputs {macro.inputs}, the micro data {micro.inputs}")
        shared = set(micro.features.subjects) & set(macro.features.subjects)
        if shared:
            # Every macro sample trains every fold: a subject in both would be trained on in its own fold.
            raise ValueError(
                f"the macro source and the micro data share subjects ({', '.join(sorted(shared)[:3])}); "
                "a macro sample is in every fold's training set, so the held-out subject would be trained on"
            )
        self.micro, self.macro = micro, macro

    # The fold's identity and training counts are the micro fold's (the loss, the fold loop, reports).
    @property
    def fold(self):
        return self.micro.fold

    @property
    def train_idx(self) -> list[int]:
        return self.micro.train_idx

    @property
    def test_idx(self) -> list[int]:
        return self.micro.test_idx

    @property
    def classes(self) -> tuple[str, ...]:
        return self.micro.classes

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.micro.inputs

    @property
    def poison_test(self) -> bool:
        """The leakage canary poisons the micro fold's held-out rows (the macro source holds none out)."""
        return self.micro.poison_test

    @property
    def train_class_counts(self) -> torch.Tensor:
        return self.micro.train_class_counts + self.macro.train_class_counts

    @property
    def extra_train_subjects(self) -> list[str]:
        """The macro subjects, trained on in this fold as in every other (the checkpoint's provenance)."""
        return sorted(set(self.macro.features.subjects))

    def setup(self, stage: str | None = None) -> None:
        self.micro.setup(stage)
        self.macro.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        loaders = {MICRO: self.micro.train_dataloader(), MACRO: self.macro.train_dataloader()}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def test_dataloader(self):
        return self.micro.test_dataloader()

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        training = self.trainer is not None and self.trainer.training
        if MICRO in batch and MACRO in batch:
            return {
                MICRO: self.micro.transform_batch(batch[MICRO], train=training),
                MACRO: self.macro.transform_batch(batch[MACRO], train=training),
            }
        return self.micro.transform_batch(batch, train=training)
