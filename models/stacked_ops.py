"""A fused first block for fold-stacked networks: 3x3 conv -> ReLU -> 3x3/3 max-pool, with batch-norm sums.

Fold-parallel LOSO (training.fold_parallel) trains K fold models on shared minibatches, so the first layer of
K shallow networks is one wide convolution of the same input (3 -> K x 16 channels for STSTNet). Written as
PyTorch layers, that wide activation (256 x 1088 x 28 x 28 floats, 873 MB at batch 256) is passed over by
ReLU, batch norm (statistics, then normalisation) and max-pooling, forward and backward: the step is bound by
memory traffic, not arithmetic (../shared/specs/stack.md, "Fold-parallel prototypes"). This block never holds
the full-resolution activation of the whole batch. It works through the batch a few samples at a time, so each
chunk's activation stays in cache, and returns only what the rest of the network needs:

- the max-pooled ReLU map (9x smaller), and
- per sample and channel, the sum and the sum of squares of the full-resolution ReLU map.

Batch norm is applied after the pool (StackedSTSTNet): with per-channel scale s = gamma / sqrt(var + eps),
max_pool(s * a + b) = s * max_pool(a) + b when s > 0, and s * min_pool(a) + b when s < 0. So the block pools
`sign * a` and multiplies back by `sign` (the sign of gamma per channel), which is exact for either sign. The
batch statistics come from the per-sample sums, so a caller can weight samples per fold (a held-out sample has
weight 0 in its own fold's statistics) with ordinary autograd on (N, C) tensors.

Backward recomputes each chunk's convolution (cheaper than storing it) and forms the full-resolution gradient
in one expression: the pooled gradient at each window's arg-max, plus the gradients of the two sums
(d sum / d a = 1, d sum-of-squares / d a = 2a), all masked by the ReLU.

Layout: channels-last (rows = positions, columns = channels), so the convolution is one matrix product of the
im2col patches with a (27 + 1, C) matrix whose last row is the bias, and the pool runs on a channels-last
view of the product (no copy). Measured on 2 cores, one 68-fold step at batch 256: 1.6 s with a fresh
tensor per chunk and separate layers after the pool, 1.0 s as written.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Working-set target of one chunk (its activation and the gradient formed from it), sized for the L2/L3
# caches of a CPU; on a GPU the whole batch is one chunk.
CHUNK_BYTES = 8 * 2**20


def pool_geometry(height: int, width: int, kernel: int = 3, stride: int = 3, padding: int = 1):
    """(pooled H, pooled W) of a kernel/stride max-pool with `padding`."""
    return (height + 2 * padding - kernel) // stride + 1, (width + 2 * padding - kernel) // stride + 1


def patches_with_bias(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H * W, C * 9 + 1): the 3x3 'same' patches of every position (im2col), with a
    constant 1 column for the bias."""
    n, c, h, w = x.shape
    patches = F.unfold(x, 3, padding=1).transpose(1, 2)  # (N, H*W, C*9)
    return torch.cat([patches, patches.new_ones(n, h * w, 1)], dim=2)


def chunk_size(per_sample_elements: int, element_bytes: int, device: torch.device) -> int:
    if device.type != "cpu":
        return 1 << 30
    return max(1, CHUNK_BYTES // max(1, per_sample_elements * element_bytes))


class ConvReluPoolSums(torch.autograd.Function):
    """patches (N, H*W, D) from `patches_with_bias`, weight (D, C) [conv weights flattened, bias last],
    sign (C,) of +-1, groups G -> pooled (G, N, C / G, Ho * Wo) = sign * max_pool(sign * relu(conv)),
    sum (N, C) and sum of squares (N, C) of relu(conv) over the H x W map. The pooled map comes out
    group-major (a fold stack's folds are the groups): the layout of the batched product that consumes it.

    Each chunk's activation lives in one buffer reused for every chunk (a fresh multi-megabyte tensor per
    chunk costs its page faults, more than the product that fills it), and every full-resolution pass is an
    in-place or `out=` operation on it."""

    @staticmethod
    def forward(ctx, patches, weight, sign, geometry, groups):
        (h, w, ho, wo) = geometry
        n_all, positions, depth = patches.shape
        c = weight.shape[1]
        flip = bool((sign < 0).any())
        pooled = patches.new_empty(groups, n_all, c // groups, ho * wo)
        sums = patches.new_empty(n_all, c)
        squares = patches.new_empty(n_all, c)
        flat_index = torch.arange(c, device=patches.device)
        step = chunk_size(positions * c, patches.element_size(), patches.device)
        chunks = [slice(first, min(n_all, first + step)) for first in range(0, n_all, step)]
        args: list[torch.Tensor | None] = [None] * len(chunks)  # per chunk: flat indices of the pooled values

        buffer = patches.new_empty(min(step, n_all) * positions * c)
        for chunk, rows in enumerate(chunks):
            n = rows.stop - rows.start
            a = torch.mm(
                patches[rows].reshape(-1, depth), weight, out=buffer[: n * positions * c].view(-1, c)
            )
            a = a.relu_().view(n, positions, c)
            grid = a.view(n, h, w, c).permute(0, 3, 1, 2)  # a channels-last view, no copy
            if flip:  # min-pool those channels (PyTorch pads a max-pool with -inf, so padding is ignored)
                grid = grid * sign.view(1, c, 1, 1)
            pool, index = F.max_pool2d(grid, 3, 3, 1, return_indices=True)
            # (n, C, Ho, Wo) -> (G, n, C/G, Ho*Wo): the one copy of the pooled map.
            pooled[:, rows] = pool.reshape(n, groups, c // groups, ho * wo).transpose(0, 1)
            # (n, C, Ho, Wo) channels-last -> (n, Ho*Wo, C) is a view; flat index: position * C + channel.
            index = index.permute(0, 2, 3, 1).reshape(n, ho * wo, c)
            args[chunk] = index.mul_(c).add_(flat_index).view(n, -1)
            torch.sum(a, 1, out=sums[rows])
            torch.sum(a.square_(), 1, out=squares[rows])

        if flip:
            pooled.mul_(sign.view(groups, 1, c // groups, 1))
        ctx.save_for_backward(patches, weight)
        ctx.args, ctx.chunks, ctx.step = args, chunks, step
        return pooled, sums, squares

    @staticmethod
    def backward(ctx, grad_pooled, grad_sums, grad_squares):
        patches, weight = ctx.saved_tensors
        n_all, positions, depth = patches.shape
        c = weight.shape[1]
        # pooled = sign * pool(sign * a): d pooled / d a at the arg-max is sign * sign = 1.
        # (G, N, C/G, Ho*Wo) -> (N, Ho*Wo, G, C/G): the layout of the flat indices.
        grad_pooled = grad_pooled.permute(1, 3, 0, 2)
        grad_squares = 2 * grad_squares
        step, chunks = ctx.step, ctx.chunks
        grad_weight = torch.zeros_like(weight)

        buffer = patches.new_empty(min(step, n_all) * positions * c)
        grad = patches.new_empty(min(step, n_all) * positions * c)
        for chunk, rows in enumerate(chunks):
            n = rows.stop - rows.start
            size = n * positions * c
            a = torch.mm(patches[rows].reshape(-1, depth), weight, out=buffer[:size].view(-1, c))
            a = a.relu_().view(n, positions, c)
            # d sum / d a = 1 and d sum-of-squares / d a = 2a, then the pooled gradient at each arg-max.
            g = grad[:size].view(n, positions, c)
            torch.addcmul(grad_sums[rows].unsqueeze(1), a, grad_squares[rows].unsqueeze(1), out=g)
            g.view(n, -1).scatter_add_(1, ctx.args[chunk], grad_pooled[rows].reshape(n, -1))
            # The ReLU's mask (0 where a == 0), in place.
            torch.ops.aten.threshold_backward.grad_input(g, a, 0, grad_input=g)
            grad_weight.addmm_(patches[rows].reshape(-1, depth).t(), g.view(-1, c))

        return None, grad_weight, None, None, None


def conv_relu_pool_sums(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sign: torch.Tensor, groups: int = 1
):
    """x (N, Cin, H, W); weight (C, Cin, 3, 3) and bias (C,) of a 'same' 3x3 conv; sign (C,) of +-1.
    Returns (pooled (groups, N, C / groups, Ho * Wo), sums (N, C), squares (N, C)) as described in the module
    docstring."""
    n, cin, h, w = x.shape
    ho, wo = pool_geometry(h, w)
    if torch.is_autocast_enabled(x.device.type):
        # Mixed precision: the block computes in the input's precision (its sums of squares over 784
        # positions would lose too much in bf16); the layers after it run under autocast as usual.
        with torch.autocast(x.device.type, enabled=False):
            return conv_relu_pool_sums(x.float(), weight.float(), bias.float(), sign.float(), groups)
    matrix = torch.cat([weight.reshape(weight.shape[0], cin * 9), bias.unsqueeze(1)], dim=1).t()
    patches = patches_with_bias(x)
    return ConvReluPoolSums.apply(patches, matrix.contiguous(), sign, (h, w, ho, wo), groups)


def reference_conv_relu_pool_sums(x, weight, bias, sign, groups: int = 1):
    """The same outputs from PyTorch layers over the whole batch (tests compare the two)."""
    a = F.relu(F.conv2d(x, weight, bias, padding=1))
    s = sign.view(1, -1, 1, 1)
    pooled = s * F.max_pool2d(s * a, 3, 3, 1)
    n, c = pooled.shape[:2]
    pooled = pooled.reshape(n, groups, c // groups, -1).transpose(0, 1)
    return pooled, a.sum((2, 3)), (a * a).sum((2, 3))
