"""AU-conditioned generative augmentation: extra training samples from a model of the input given its AUs.

AU-GACN's AU-ICGAN (specs/models.md section 6) synthesises micro-expression clips driven by the AU
intensities of real clips, strictly inside the training data, and reports that the extra clips help MER
models. Its generator is a GANimation-style network trained on face images with OpenFace AU intensities,
neither of which MERLin has for every database. What is kept here is the idea at the size of MERLin's data:
a small conditional variational autoencoder (Kingma et al. 2014; Sohn et al. 2015) of the network's input
(the apex flow, a sequence, any single named input) given the clip's AU vector, fitted in every fold on that
fold's training subjects only, then sampled with the AU vectors (and emotion labels) of training clips: new
inputs for AU combinations the fold has, labelled like the clips whose AUs they were drawn for.

    condition c   = [AU targets * mask, mask]   (an unknown AU is "unknown", not "absent")
    encoder       flatten(x) ++ c -> 256 -> ReLU -> (mu, log var) of a 16-d latent z
    decoder       z ++ c -> 256 -> ReLU -> flatten(x)
    loss          mean squared reconstruction error + beta * KL(q(z | x, c) || N(0, I))
    sampling      for `ratio` x (training clips) draws: a training clip k (uniform), z ~ N(0, I),
                  x' = decoder(z, c_k), label y_k

Inputs are standardised per element with the training rows' mean and deviation before fitting (and the
samples mapped back), so the generator works in the raw units the data module stores. It is a small model
on purpose: a few hundred clips cannot fit a large one, and the question it answers is the paper's (do
AU-driven synthetic samples help?), measured with and without (`datamodule.au_generative`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class _CVAE(nn.Module):
    def __init__(self, dim: int, condition: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim + condition, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.log_var = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent + condition, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.latent = latent

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([x, c], dim=1))
        mu, log_var = self.mu(h), self.log_var(h).clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return self.decoder(torch.cat([z, c], dim=1)), mu, log_var

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, c], dim=1))


class AUGenerativeAugment:
    """Fit on a fold's training rows (`fit`), then `sample` extra (input, label, AU) rows; see the module
    docstring. ratio: extra samples per training clip. epochs, batch_size, lr: the CVAE's training. beta:
    the KL weight. hidden, latent: its sizes. seed: of its initialisation, training and sampling."""

    def __init__(
        self,
        ratio: float = 1.0,
        epochs: int = 200,
        batch_size: int = 64,
        lr: float = 1e-3,
        beta: float = 1.0,
        hidden: int = 256,
        latent: int = 16,
        seed: int = 0,
    ) -> None:
        if ratio <= 0:
            raise ValueError(f"ratio (extra samples per training clip) must be > 0, got {ratio}")
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
        self.ratio, self.epochs, self.batch_size, self.lr, self.beta = ratio, epochs, batch_size, lr, beta
        self.hidden, self.latent, self.seed = hidden, latent, seed
        self.model: _CVAE | None = None
        self.final_loss: float | None = None

    def fit(self, x: torch.Tensor, au: torch.Tensor, au_mask: torch.Tensor) -> AUGenerativeAugment:
        """x: (n, ...) training inputs in raw units; au, au_mask: (n, A) their AU targets and mask."""
        if au is None or au_mask is None:
            raise ValueError("AU-conditioned augmentation needs AU targets: set datamodule.action_units")
        if len(x) < 2:
            raise ValueError(f"AU-conditioned augmentation needs at least 2 training clips, got {len(x)}")
        generator = torch.Generator().manual_seed(self.seed)
        self._shape = tuple(x.shape[1:])
        flat = x.reshape(len(x), -1).float()
        self._mean, self._std = flat.mean(dim=0), flat.std(dim=0).clamp_min(1e-6)
        data = (flat - self._mean) / self._std
        self._conditions = torch.cat([au.float() * au_mask.float(), au_mask.float()], dim=1)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.model = _CVAE(data.shape[1], self._conditions.shape[1], self.hidden, self.latent)
            optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
            self.model.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(data), generator=generator)
                total = 0.0
                for start in range(0, len(data), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    recon, mu, log_var = self.model(data[rows], self._conditions[rows])
                    kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1).mean()
                    loss = F.mse_loss(recon, data[rows], reduction="none").sum(dim=1).mean() + self.beta * kl
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(rows)
                self.final_loss = total / len(data)
        self.model.eval()
        return self

    @torch.no_grad()
    def sample(
        self, y: torch.Tensor, au: torch.Tensor, au_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """round(ratio * n) new rows (x, y, au, au_mask), each drawn for a random training clip (whose
        label, AUs and AU mask it takes; y, au, au_mask are the training rows given to `fit`)."""
        if self.model is None:
            raise RuntimeError("AUGenerativeAugment.fit must run (on the training fold) before sample")
        generator = torch.Generator().manual_seed(self.seed + 1)
        count = max(1, round(self.ratio * len(y)))
        source = torch.randint(len(y), (count,), generator=generator)
        z = torch.randn(count, self.latent, generator=generator)
        flat = self.model.decode(z, self._conditions[source]) * self._std + self._mean
        return flat.reshape(count, *self._shape), y[source], au[source], au_mask[source]


def extended_training_rows(
    inputs: dict, y: torch.Tensor, au, au_mask, train_idx: Sequence[int], augment: AUGenerativeAugment
) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, y, au, au_mask) of the training rows followed by the generated ones: what the training
    loader of a fold with generative augmentation serves. One named input only."""
    if len(inputs) != 1:
        raise ValueError(
            f"AU-conditioned augmentation models one input; this experiment has {sorted(inputs)}"
        )
    ((name, array),) = inputs.items()
    if not isinstance(array, torch.Tensor):
        raise ValueError(
            f"AU-conditioned augmentation needs input {name!r} in memory, not streamed from disk"
        )
    rows = torch.as_tensor(list(train_idx), dtype=torch.long)
    augment.fit(array[rows], au[rows], au_mask[rows])
    x_new, y_new, au_new, mask_new = augment.sample(y[rows], au[rows], au_mask[rows])
    return (
        {name: torch.cat([array[rows], x_new.to(array.dtype)])},
        torch.cat([y[rows], y_new]),
        torch.cat([au[rows], au_new]),
        torch.cat([au_mask[rows], mask_new]),
    )
