"""Single-scale ViT maps -> a 4-level pyramid (strides 4, 8, 16, 32 for patch 16).

* ``MultiTapPyramid`` (MAE App. A.3 / Li et al.): one tap per block group, rescaled by 4x, 2x, 1x, 1/2;
  the modules keep the width: 4x = ConvT-Norm-GELU-ConvT, 2x = ConvT, 1x = identity, 1/k = max-pool by k
  (scales are chosen from the patch size so the strides are 4, 8, 16, 32).
* ``SingleTapPyramid`` (ViTDet): all four levels from the last block, with ViTDet's width halving on the
  upsampling paths (4x: C -> C/2 -> C/4 with LayerNorm + GELU in between; 2x: C -> C/2). Only the scale
  ops of detectron2's ``SimpleFeaturePyramid``: its per-level output convs are the detection harness's
  (``mae_transfer.det.modeling.SimpleNeck``), as the FPN's are for the multi-tap pyramid.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d

from .errors import ConfigError


class SyncBatchNormCPU(nn.BatchNorm2d):
    """SyncBatchNorm (training statistics of the global batch) for CPU processes (gloo), where torch's has no
    kernels (and DDP refuses it). The per-channel sums are all-reduced in two passes (mean, then the centered
    squares) like one process's BatchNorm, through torch.distributed.nn's differentiable all_reduce. In eval
    mode or in one process it is BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        group = dist.group.WORLD if dist.is_available() and dist.is_initialized() else None
        if not self.training or group is None or dist.get_world_size(group) == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dtype, x = x.dtype, x.float()  # statistics in fp32 under autocast too, as BatchNorm's
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        sums = all_reduce(torch.cat([x.sum(dims), x.new_tensor([x.numel() / x.shape[1]])]), group=group)
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centered = x - mean.view(shape)
        var = all_reduce((centered * centered).sum(dims), group=group) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), momentum)  # unbiased, as BatchNorm
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        out = out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out
        return out.to(dtype)


def norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "GN":
        return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if kind == "SyncBNCPU":
        return SyncBatchNormCPU(channels)
    if kind == "LN":
        return LayerNorm2d(channels, eps=1e-6)
    raise ConfigError(f"unknown pyramid norm {kind!r}; choose GN, BN, SyncBN, SyncBNCPU or LN")


class ConvTranspose2x2(nn.ConvTranspose2d):
    """2x upsampling by a 2x2 stride-2 transposed convolution (``nn.ConvTranspose2d``'s parameters and
    state-dict keys).

    Each input pixel feeds its own 2x2 output block, so on CPU it runs as one matmul and a pixel shuffle:
    1.3-1.5x faster forward + backward than oneDNN's transposed convolution at ViT-B widths on 64-128 px maps
    (the multi-tap pyramid's 4x path is most of its cost). Other devices keep the library kernel.

    A 1x1 convolution that follows (a neck's lateral conv) can run inside it: ``forward(x, project)`` is
    ``project(self(x))`` as one transposed convolution with the composed weight, so the full-width upsampled
    map is never made (see ``ViTPyramidBackbone.fold``).

    Args:
        in_channels: input width.
        out_channels: output width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor, project: nn.Conv2d | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if project is not None:  # (P W) x + P b + b_P: a 1x1 conv is a matmul over the output channels
            p = project.weight.flatten(1)  # (C', Cout)
            weight = torch.einsum("oc,icyx->ioyx", p, weight)
            bias = None if bias is None else p @ bias
            if project.bias is not None:
                bias = project.bias if bias is None else bias + project.bias
        if x.device.type != "cpu":
            return F.conv_transpose2d(x, weight, bias, stride=2)
        b, _, h, w = x.shape
        # weight (Cin, Cout, 2, 2) -> (Cout * 4, Cin); output column c * 4 + 2 * dy + dx
        bias = None if bias is None else bias.repeat_interleave(4)
        y = F.linear(x.permute(0, 2, 3, 1), weight.flatten(1).t(), bias)  # (B, H, W, Cout * 4)
        y = y.view(b, h, w, -1, 2, 2).permute(0, 3, 1, 4, 2, 5)  # (B, Cout, H, dy, W, dx)
        return y.reshape(b, -1, 2 * h, 2 * w)


def _rescale(scale: float, cin: int, cout_half: bool, norm: str) -> tuple[nn.Module, int]:
    """Resolution module for one level; returns (module, output channels)."""
    if scale == 4.0:
        mid = cin // 2 if cout_half else cin
        out = cin // 4 if cout_half else cin
        return nn.Sequential(
            ConvTranspose2x2(cin, mid),
            norm2d(norm, mid),
            nn.GELU(),
            ConvTranspose2x2(mid, out),
        ), out
    if scale == 2.0:
        out = cin // 2 if cout_half else cin
        return ConvTranspose2x2(cin, out), out
    if scale == 1.0:
        return nn.Identity(), cin
    if scale < 1.0 and float(1 / scale).is_integer():
        k = int(1 / scale)
        return nn.MaxPool2d(k, k), cin
    raise ConfigError(f"unsupported pyramid scale {scale}; use 4, 2, 1 or 1/k (max-pool by k)")


class _ScalePyramid(nn.Module):
    """One resolution module per level (``scales``: 4, 2, 1 or 1/k per level) on ``dim``-wide maps."""

    def __init__(self, dim: int, scales: tuple[float, ...], norm: str, halve_width: bool) -> None:
        super().__init__()
        mods = [_rescale(s, dim, halve_width, norm) for s in scales]
        self.levels = nn.ModuleList(m for m, _ in mods)
        self.out_channels = [c for _, c in mods]

    def foldable(self) -> list[bool]:
        """Per level: whether it ends in a ``ConvTranspose2x2``, which can run a following 1x1 conv inside."""
        return [isinstance(_last(m), ConvTranspose2x2) for m in self.levels]

    def _level(self, i: int, x: torch.Tensor, project: nn.Conv2d | None) -> torch.Tensor:
        level = self.levels[i]
        if project is None:
            return level(x)
        if isinstance(level, nn.Sequential):
            x = level[:-1](x)
        return _last(level)(x, project)


def _last(module: nn.Module) -> nn.Module:
    return module[-1] if isinstance(module, nn.Sequential) else module


class MultiTapPyramid(_ScalePyramid):
    """Level i rescales tap i by ``scales[i]``, keeping the width.

    Args:
        dim: the ViT's width.
        scales: one per level, finest first (patch 16: 4, 2, 1, 1/2 for strides 4-32).
        norm: the norm between the two 4x transposed convs (``norm2d``: GN, BN, SyncBN, SyncBNCPU, LN).
    """

    def __init__(self, dim: int, scales: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5), norm: str = "GN") -> None:
        super().__init__(dim, scales, norm, halve_width=False)

    def forward(
        self, taps: list[torch.Tensor], project: list[nn.Conv2d | None] | None = None
    ) -> list[torch.Tensor]:
        """Level i from ``taps[i]``; ``project[i]``, if given, a 1x1 conv run inside the level's last
        transposed conv (only where ``foldable()``)."""
        project = project or [None] * len(self.levels)
        return [self._level(i, t, p) for i, (t, p) in enumerate(zip(taps, project))]


class SingleTapPyramid(_ScalePyramid):
    """Every level from the last tap (ViTDet), halving the width on the way up; arguments as
    ``MultiTapPyramid`` (ViTDet's norm is LN)."""

    def __init__(self, dim: int, scales: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5), norm: str = "LN") -> None:
        super().__init__(dim, scales, norm, halve_width=True)

    def forward(
        self, taps: list[torch.Tensor], project: list[nn.Conv2d | None] | None = None
    ) -> list[torch.Tensor]:
        project = project or [None] * len(self.levels)
        return [self._level(i, taps[-1], p) for i, p in enumerate(project)]
