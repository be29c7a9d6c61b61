"""K STSTNets side by side, trained together on shared minibatches (training.fold_parallel).

Every fold sees every batch; `weights` (N, K) says which samples train which fold (0 for the fold's held-out
subject). A sample of weight 0 adds nothing to its fold's batch-norm statistics (they are weighted sums), and
the fold's loss leaves it out, so no gradient of that fold's parameters depends on it: the fold learns from
its training subjects only, exactly as when trained alone.

Per fold the network is STSTNet (models.ststnet), rearranged without changing what it computes:
- the three streams (3, 5 and 8 filters over the same input) are one 3 -> 16 conv, so K folds are one
  3 -> K x 16 conv of the shared input, run by models.stacked_ops (never materialising the full-resolution
  activation of the batch);
- batch norm is applied after the 3x3/3 max-pool, which is exact (see models.stacked_ops), with each fold's
  own batch statistics, running statistics and affine parameters;
- the heads are one batched matrix product.
Dropout draws one mask per sample and pooled position, shared by the K folds: each fold's training still
sees independent Bernoulli dropout, and its draws (like its batches) do not depend on which other folds are
trained alongside it. Per-fold masks would cost K times the random numbers, and drawing them is slower than
the rest of the step on a CPU.
`fold_state_dict(k)` gives fold k's weights under STSTNet's own state-dict keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from models.stacked_ops import conv_relu_pool_sums, pool_geometry
from models.ststnet import STREAM_WIDTHS, STSTNet

_CONVS = ("conv1", "conv2", "conv3")
_NORMS = ("bn1", "bn2", "bn3")


class StackedSTSTNet(nn.Module):
    def __init__(self, nets: Sequence[STSTNet], dropout_seed: int | None = None) -> None:
        super().__init__()
        if not nets:
            raise ValueError("a fold stack needs at least one network")
        first = nets[0]
        for net in nets:
            if not isinstance(net, STSTNet):
                raise TypeError(f"StackedSTSTNet stacks STSTNets, got {type(net).__name__}")
            if (net.in_chans, net.num_classes, net.drop.p, isinstance(net.bn1, nn.BatchNorm2d)) != (
                first.in_chans,
                first.num_classes,
                first.drop.p,
                isinstance(first.bn1, nn.BatchNorm2d),
            ):
                raise ValueError("stacked STSTNets must share in_chans, num_classes, drop_rate and use_bn")
        self.num_folds = len(nets)
        self.in_chans, self.num_classes = first.in_chans, first.num_classes
        self.width = sum(STREAM_WIDTHS)
        self.drop_rate = float(first.drop.p)
        self.use_bn = isinstance(first.bn1, nn.BatchNorm2d)
        self.dropout_seed = dropout_seed
        self._generator: torch.Generator | None = None  # made on the device of the first training batch

        def stack(get) -> torch.Tensor:
            return torch.stack([get(net).detach().clone() for net in nets])

        self.conv_weight = nn.Parameter(stack(lambda n: torch.cat([getattr(n, c).weight for c in _CONVS])))
        self.conv_bias = nn.Parameter(stack(lambda n: torch.cat([getattr(n, c).bias for c in _CONVS])))
        if self.use_bn:
            self.eps, self.momentum = first.bn1.eps, first.bn1.momentum
            self.bn_weight = nn.Parameter(stack(lambda n: torch.cat([getattr(n, b).weight for b in _NORMS])))
            self.bn_bias = nn.Parameter(stack(lambda n: torch.cat([getattr(n, b).bias for b in _NORMS])))
            self.register_buffer("running_mean", stack(lambda n: _cat_buffer(n, "running_mean")))
            self.register_buffer("running_var", stack(lambda n: _cat_buffer(n, "running_var")))
            # STSTNet's three norms count the same batches; the stack keeps one count per fold.
            self.register_buffer("num_batches_tracked", stack(lambda n: n.bn1.num_batches_tracked))
        self.fc_weight = nn.Parameter(stack(lambda n: n.fc.weight))
        self.fc_bias = nn.Parameter(stack(lambda n: n.fc.bias))

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, in_chans, H, W) shared by all folds; weights (N, K): 1 where a sample trains a fold, 0 where
        it must not touch it (training mode only). Returns (N, K, num_classes) logits."""
        n, k, width = x.shape[0], self.num_folds, self.width
        h, w = x.shape[2:]
        if self.training and self.use_bn and (weights is None or weights.shape != (n, k)):
            raise ValueError(f"training a fold stack needs weights of shape ({n}, {k})")
        sign = torch.ones(k, width, dtype=x.dtype, device=x.device)
        if self.use_bn:
            sign = torch.where(self.bn_weight.detach() < 0, -1.0, 1.0).to(x.dtype)
        pooled, sums, squares = conv_relu_pool_sums(
            x,
            self.conv_weight.reshape(k * width, *self.conv_weight.shape[2:]),
            self.conv_bias.reshape(k * width),
            sign.reshape(k * width),
            groups=k,
        )
        ho, wo = pool_geometry(h, w)  # pooled: (K, N, 16, Ho*Wo)
        keep = None
        if self.training and self.drop_rate > 0:
            keep = torch.empty(n, width, ho * wo, dtype=x.dtype, device=x.device)
            keep.bernoulli_(1 - self.drop_rate, generator=self._dropout_generator(x.device))
            keep.mul_(1 / (1 - self.drop_rate))
        # The 2x2 average pool and the linear head are one linear map of the pooled (normalised, dropped-out)
        # map: the head's weights spread over the positions they average. Batch norm's scale joins those
        # weights and its shift joins the bias, so the only passes over the (N, K x 16, 10, 10) maps are the
        # dropout product and one batched matrix product.
        head = self._head_weight(ho, wo)  # (K, classes, 16, Ho*Wo)
        bias = self.fc_bias
        if self.use_bn:
            if self.training:
                sums, squares = sums.view(n, k, width), squares.view(n, k, width)
                mean, var = self._batch_statistics(sums, squares, weights, h * w)
            else:
                mean, var = self.running_mean, self.running_var
            scale = self.bn_weight * torch.rsqrt(var + self.eps)  # (K, 16)
            shift = self.bn_bias - mean * scale
            shifted = head * shift[:, None, :, None]
            head = head * scale[:, None, :, None]
            if keep is None:
                bias = bias + shifted.sum((2, 3))
            else:  # each sample's shift passes its own dropout mask
                bias = bias + torch.einsum("ncp,kocp->nko", keep, shifted)
        if keep is not None:
            pooled = pooled * keep
        logits = torch.bmm(pooled.flatten(2), head.flatten(2).transpose(1, 2))  # (K, N, classes)
        return logits.transpose(0, 1) + bias

    def _head_weight(self, ho: int, wo: int) -> torch.Tensor:
        """The head's weights on the pooled map: each 2x2/2 average-pool cell's weight / 4 on its 4 inputs
        (a row or column the pool drops gets 0)."""
        k, classes, width = self.num_folds, self.num_classes, self.width
        weight = self.fc_weight.view(k, classes, width, ho // 2, wo // 2) / 4
        weight = weight.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        weight = F.pad(weight, (0, wo - weight.shape[4], 0, ho - weight.shape[3]))
        return weight.reshape(k, classes, width, ho * wo)

    def _dropout_generator(self, device: torch.device) -> torch.Generator | None:
        if self.dropout_seed is None:
            return None  # the global generator
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.dropout_seed)
        return self._generator

    def _batch_statistics(self, sums, squares, weights, positions: int):
        """Per fold and channel: the mean and (biased) variance over the fold's weighted samples and all
        positions; updates the running statistics as nn.BatchNorm2d does (unbiased variance, momentum)."""
        weights = weights.to(sums.dtype)
        count = weights.sum(0) * positions  # (K,)
        safe = count.clamp_min(1.0)[:, None]
        mean = torch.einsum("nk,nkc->kc", weights, sums) / safe
        var = (torch.einsum("nk,nkc->kc", weights, squares) / safe - mean.square()).clamp_min(0.0)
        present = count > 0  # a fold with no training row in this batch keeps its running statistics
        with torch.no_grad():
            unbiased = var * (count / (count - 1).clamp_min(1.0))[:, None]
            m = self.momentum
            new_mean = torch.lerp(self.running_mean, mean.detach(), m)
            new_var = torch.lerp(self.running_var, unbiased.detach(), m)
            self.running_mean.copy_(torch.where(present[:, None], new_mean, self.running_mean))
            self.running_var.copy_(torch.where(present[:, None], new_var, self.running_var))
            self.num_batches_tracked.add_(present.long())
        # A fold without rows here has no statistics; any finite values do (none of its logits is used).
        mean = torch.where(present[:, None], mean, 0.0)
        var = torch.where(present[:, None], var, 1.0)
        return mean, var

    def fold_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Fold k's weights under STSTNet's keys (loadable with STSTNet.load_state_dict, strict)."""
        state: dict[str, torch.Tensor] = {}
        first = 0
        for i, filters in enumerate(STREAM_WIDTHS):
            part = slice(first, first + filters)
            state[f"{_CONVS[i]}.weight"] = self.conv_weight[k, part].detach().clone()
            state[f"{_CONVS[i]}.bias"] = self.conv_bias[k, part].detach().clone()
            if self.use_bn:
                norm = _NORMS[i]
                state[f"{norm}.weight"] = self.bn_weight[k, part].detach().clone()
                state[f"{norm}.bias"] = self.bn_bias[k, part].detach().clone()
                state[f"{norm}.running_mean"] = self.running_mean[k, part].clone()
                state[f"{norm}.running_var"] = self.running_var[k, part].clone()
                state[f"{norm}.num_batches_tracked"] = self.num_batches_tracked[k].clone()
            first += filters
        state["fc.weight"] = self.fc_weight[k].detach().clone()
        state["fc.bias"] = self.fc_bias[k].detach().clone()
        return state


def _cat_buffer(net: STSTNet, name: str) -> torch.Tensor:
    return torch.cat([getattr(getattr(net, norm), name) for norm in _NORMS])
