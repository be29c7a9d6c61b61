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
im2col patches with a (27 + 1, C) matrix whose last row is the bias, and the 3x3/3 pool with padding 1 over
a 28x28 map is a pool of a zero-padded 30x30 map: zero rows of the patch matrix (bias column included) give
zero activations, and a zero never wins a max against the ReLU outputs it pads (they are >= 0). A channel
pooled as a min (negative gamma) needs the padding ignored instead: those batches take PyTorch's padded pool.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Working-set target of one chunk (its activation and the gradient formed from it), sized for the L2/L3
# caches of a CPU; on a GPU the whole batch is one chunk.
CHUNK_BYTES = 8 * 2**20


def pool_geometry(height: int, width: int, kernel: int = 3, stride: int = 3, padding: int = 1):
    """(pooled H, pooled W, padded H, padded W) of a kernel/stride max-pool with `padding`; the padded map is
    cut to whole windows so a pool without padding of it gives the same windows."""
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    return out_h, out_w, (out_h - 1) * stride + kernel, (out_w - 1) * stride + kernel


def padded_patches(x: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """(N, C, H, W) -> (N, Hp * Wp, C * 9 + 1): the 3x3 'same' patches of every position of the pool's padded
    map, with a constant 1 column for the bias; positions in the pool's padding are all-zero rows."""
    n, c, h, w = x.shape
    _, _, hp, wp = pool_geometry(h, w, padding=padding)
    patches = F.unfold(x, 3, padding=1).transpose(1, 2)  # (N, H*W, C*9), im2col of the 'same' conv
    patches = torch.cat([patches, patches.new_ones(n, h * w, 1)], dim=2).view(n, h, w, c * 9 + 1)
    out = patches.new_zeros(n, hp, wp, c * 9 + 1)
    out[:, padding : padding + h, padding : padding + w] = patches[:, : hp - padding, : wp - padding]
    return out.view(n, hp * wp, c * 9 + 1)


def chunk_size(per_sample_elements: int, element_bytes: int, device: torch.device) -> int:
    if device.type != "cpu":
        return 1 << 30
    return max(1, CHUNK_BYTES // max(1, per_sample_elements * element_bytes))


class ConvReluPoolSums(torch.autograd.Function):
    """patches (N, P, D) from `padded_patches`, weight (D, C) [conv weights flattened, bias last], sign (C,)
    of +-1 -> pooled (N, C, Ho, Wo) = sign * max_pool(sign * relu(conv)), sum (N, C), sum of squares (N, C)
    of relu(conv) over the H x W map."""

    @staticmethod
    def forward(ctx, patches, weight, sign, geometry):
        (h, w, ho, wo, hp, wp, padding) = geometry
        n_all, _, depth = patches.shape
        c = weight.shape[1]
        flip = bool((sign < 0).any())
        pooled = patches.new_empty(n_all, c, ho, wo)
        sums = patches.new_empty(n_all, c)
        squares = patches.new_empty(n_all, c)
        arg = torch.empty(n_all, c, ho, wo, dtype=torch.long, device=patches.device)
        step = chunk_size(hp * wp * c, patches.element_size(), patches.device)
        for first in range(0, n_all, step):
            rows = slice(first, min(n_all, first + step))
            a = torch.matmul(patches[rows], weight).relu_()  # (n, Hp*Wp, C)
            sums[rows] = a.sum(1)
            squares[rows] = torch.linalg.vecdot(a, a, dim=1)
            if flip:  # min-pool those channels: ignore the padding (PyTorch pads a max-pool with -inf)
                signed = (a * sign).view(-1, hp, wp, c)[:, padding : padding + h, padding : padding + w]
                pool, index = F.max_pool2d(signed.permute(0, 3, 1, 2), 3, 3, padding, return_indices=True)
                # Indices of the unpadded map -> indices of the padded one (what backward scatters into).
                index = (index // w + padding) * wp + index % w + padding
            else:
                grid = a.view(-1, hp, wp, c).permute(0, 3, 1, 2)  # a channels-last view, no copy
                pool, index = F.max_pool2d(grid, 3, 3, 0, return_indices=True)
            pooled[rows] = pool
            arg[rows] = index
        if flip:
            pooled.mul_(sign.view(1, c, 1, 1))
        ctx.save_for_backward(patches, weight, arg)
        ctx.step = step
        return pooled, sums, squares

    @staticmethod
    def backward(ctx, grad_pooled, grad_sums, grad_squares):
        patches, weight, arg = ctx.saved_tensors
        n_all, positions, depth = patches.shape
        c = weight.shape[1]
        grad_weight = torch.zeros_like(weight)
        # pooled = sign * pool(sign * a): d pooled / d a at the arg-max is sign * sign = 1.
        grad_pooled = grad_pooled.flatten(2).transpose(1, 2)  # (N, Ho*Wo, C)
        arg = arg.flatten(2).transpose(1, 2)
        grad_squares = 2 * grad_squares
        for first in range(0, n_all, ctx.step):
            rows = slice(first, min(n_all, first + ctx.step))
            a = torch.matmul(patches[rows], weight).relu_()
            grad = torch.addcmul(grad_sums[rows].unsqueeze(1), a, grad_squares[rows].unsqueeze(1))
            grad.scatter_add_(1, arg[rows], grad_pooled[rows])
            grad = torch.ops.aten.threshold_backward(grad, a, 0)  # the ReLU's mask (0 where a == 0)
            grad_weight.addmm_(patches[rows].reshape(-1, depth).t(), grad.reshape(-1, c))
        return None, grad_weight, None, None


def conv_relu_pool_sums(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sign: torch.Tensor):
    """x (N, Cin, H, W); weight (C, Cin, 3, 3) and bias (C,) of a 'same' 3x3 conv; sign (C,) of +-1.
    Returns (pooled (N, C, Ho, Wo), sums (N, C), squares (N, C)) as described in the module docstring."""
    n, cin, h, w = x.shape
    ho, wo, hp, wp = pool_geometry(h, w)
    if torch.is_autocast_enabled(x.device.type):
        # Mixed precision: the block computes in the input's precision (its sums of squares over 784
        # positions would lose too much in bf16); the layers after it run under autocast as usual.
        with torch.autocast(x.device.type, enabled=False):
            return conv_relu_pool_sums(x.float(), weight.float(), bias.float(), sign.float())
    matrix = torch.cat([weight.reshape(weight.shape[0], cin * 9), bias.unsqueeze(1)], dim=1).t()
    patches = padded_patches(x)
    return ConvReluPoolSums.apply(patches, matrix.contiguous(), sign, (h, w, ho, wo, hp, wp, 1))


def reference_conv_relu_pool_sums(x, weight, bias, sign):
    """The same outputs from PyTorch layers over the whole batch (tests compare the two)."""
    a = F.relu(F.conv2d(x, weight, bias, padding=1))
    s = sign.view(1, -1, 1, 1)
    return s * F.max_pool2d(s * a, 3, 3, 1), a.sum((2, 3)), (a * a).sum((2, 3))
