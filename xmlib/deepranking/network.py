"""The multiscale Deep Ranking network (Fig. 3 of Wang et al., CVPR 2014), chapter "The network"
(in the chapter :math:numref:`eq-dr-network`).

Three paths over one image, with weights shared by the triplet's three images:

1. **ConvNet branch** — a pretrained classifier's pooled features, L2-normalised. The paper uses an
   AlexNet-like net (4096-d); we use EfficientNet-Lite0 (1280-d global average pool). It is either
   *frozen* (the book's CPU profile: features computed once and cached, passed to :meth:`forward` as
   ``convnet_features``) or *fine-tuned* (the ``paper`` profile). Any module mapping images
   (B, 3, H, W) → (B, F) or (B, F, h, w) can be injected (tests use a tiny random CNN).
2. **Shallow branch 1** — subsample 4:1, conv 8×8 stride 4 (96 channels), max-pool 3×3 stride 2.
3. **Shallow branch 2** — subsample 8:1, conv 8×8 stride 4 (96 channels), max-pool 7×7 stride 4.

The two shallow outputs are flattened, concatenated and L2-normalised; then
``[shallow ‖ ConvNet] → dropout → linear embedding → L2-normalisation`` gives f(p), a unit vector.

**Padding convention** (the paper's figure sizes do not agree with each other; e.g. 15×15 pooled 3×3
stride 2 is 7×7, not the 4×4 drawn): the conv pads 2 pixels on each side, so a side n becomes ⌊n/4⌋;
each max-pool pads ⌊k/2⌋, so a side m becomes ⌈m/s⌉. Subsampling is k:1 area averaging of the input
centred by subtracting 0.5 (the mean-image subtraction of the paper's era; see :class:`ShallowBranch`). With a
224-px input: branch 1 56 → 14 → 7 (7×7×96), branch 2 28 → 7 → 2 (2×2×96). With 64 px: 16 → 4 → 2 and
8 → 2 → 1. Without padding the 8:1 branch cannot even be pooled at 224 px (28 → 6, smaller than 7).
:func:`shallow_output_side` gives the side for any input.

**Augmentation and dropout**: random pixel shift (each image translated by an integer offset in
[−s, s]², edges replicated) is applied to the input in training mode; dropout with drop probability
0.4 (the paper's keep probability 0.6) acts on the input of the linear embedding, the one FC layer
that is trained in every profile. With cached ConvNet features the shift reaches the shallow branches
only (the cache holds features of the unshifted image).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmlib.deepranking.config import Config
from xmlib.distances import l2_normalize

# EfficientNet-Lite expects (x·255 − 127) / 128, i.e. roughly [−1, 1]
_LITE_MEAN = 127.0 / 255.0
_LITE_STD = 128.0 / 255.0


# ----------------------------------------------------------------------------- augmentation
def pixel_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by its own random integer offset (dy, dx) ∈ [−s, s]², replicating edges.

    Args:
        images: (B, C, H, W).
        max_shift: s ≥ 0 pixels.
    Returns:
        (B, C, H, W); ``out[b, :, y, x] = images[b, :, clamp(y − dy_b), clamp(x − dx_b)]``.
    """
    if max_shift <= 0:
        return images
    b, c, h, w = images.shape
    s = int(max_shift)
    padded = F.pad(images, (s, s, s, s), mode="replicate")  # (B, C, H+2s, W+2s)
    off = torch.randint(0, 2 * s + 1, (b, 2), generator=generator)  # crop corner = s − shift (drawn on the CPU)
    # one window of the padded image per image: slices copy whole rows (an index gather of every
    # pixel was a third of a training step)
    corners = off.tolist()
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(corners)])  # (B, C, H, W)


class PixelShift(nn.Module):
    """Random pixel shift (the paper's augmentation), active only in training mode."""

    def __init__(self, max_shift: int):
        super().__init__()
        self.max_shift = int(max_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shift(x, self.max_shift) if self.training else x

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


# ----------------------------------------------------------------------------- shallow branches
CONV_KERNEL, CONV_STRIDE, CONV_PAD = 8, 4, 2


def shallow_output_side(image_side: int, factor: int, pool_kernel: int, pool_stride: int) -> int:
    """Side of a shallow branch's output under our padding convention (see the module docstring)."""
    n = image_side // factor  # k:1 subsampling
    m = (n + 2 * CONV_PAD - CONV_KERNEL) // CONV_STRIDE + 1  # = ⌊n/4⌋
    return (m + 2 * (pool_kernel // 2) - pool_kernel) // pool_stride + 1  # = ⌈m/s⌉


class ShallowBranch(nn.Module):
    """Subsample ``factor``:1 → conv 8×8 stride 4 (``channels``) → ReLU → max-pool ``pool_kernel`` stride ``pool_stride``.

    Input (B, 3, H, W) in [0, 1], centred by subtracting 0.5 (the ConvNets of the paper's time subtract
    a mean image; without centring all ReLU responses share one direction and the L2-normalised
    outputs barely differ); output (B, channels · side²), side from :func:`shallow_output_side`.
    """

    centre = 0.5

    def __init__(self, factor: int, pool_kernel: int, pool_stride: int, channels: int = 96, in_channels: int = 3):
        super().__init__()
        self.factor, self.pool_kernel, self.pool_stride = factor, pool_kernel, pool_stride
        self.channels = channels
        self.conv = nn.Conv2d(in_channels, channels, CONV_KERNEL, stride=CONV_STRIDE, padding=CONV_PAD)
        self.pool = nn.MaxPool2d(pool_kernel, stride=pool_stride, padding=pool_kernel // 2)

    def out_dim(self, image_side: int) -> int:
        return self.channels * shallow_output_side(image_side, self.factor, self.pool_kernel, self.pool_stride) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 4 * self.factor:
            raise ValueError(f"image side {tuple(x.shape[-2:])} too small for the {self.factor}:1 branch (needs >= {4 * self.factor})")
        x = F.avg_pool2d(x - self.centre, self.factor)  # (B, 3, H/f, W/f)  centre, subsample f:1
        x = self.pool(F.relu(self.conv(x)))  # (B, C, side, side)
        return x.flatten(1)  # (B, C·side²)


# ----------------------------------------------------------------------------- ConvNet branch
class PooledBackbone(nn.Module):
    """Wraps a CNN so that images (B, 3, H, W) in [0, 1] give pooled features (B, F).

    ``features`` maps normalised images to (B, F, h, w) or (B, F); ``mean``/``std`` normalise the input;
    ``image_size`` (if set) resizes the input (bilinear) first.
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor] | nn.Module, out_dim: int,
                 mean: float = 0.0, std: float = 1.0, image_size: int | None = None):
        super().__init__()
        self.features = features
        self.out_dim, self.mean, self.std, self.image_size = out_dim, mean, std, image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        y = self.features((x - self.mean) / self.std)
        if y.ndim == 4:
            y = y.mean(dim=(2, 3))  # global average pool (B, F)
        return y


class _LiteFeatures(nn.Module):
    """Feature map (B, 1280, h, w) of the project's EfficientNet-Lite0 (:meth:`feature_map`)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.feature_map(x)  # (B, 1280, h, w)


def efficientnet_lite0_backbone(image_size: int | None = 224, pretrained: bool = True) -> PooledBackbone:
    """ImageNet-pretrained EfficientNet-Lite0 as a :class:`PooledBackbone` (1280-d); ``pretrained=False``:
    random weights of the same shapes (speed and memory checks, ``benchmarks/gpu_check.py``).

    Takes images in [0, 1]; normalises them as the Lite weights expect, ``(pixel − 127) / 128``. The
    network and its weights come from the project's loader :func:`xmlib.data.features.efficientnet_lite0`.
    """
    try:
        from xmlib.data.features import efficientnet_lite0
    except ImportError as exc:  # a broken install: say how to repair it, never load the weights another way
        raise ImportError(
            f"the pretrained ConvNet is loaded by xmlib.data.features, which cannot be imported ({exc}); "
            "reinstall the pinned requirements and the project: pip install -r requirements.txt && pip install -e ."
        ) from exc
    net = efficientnet_lite0(pretrained=pretrained)
    return PooledBackbone(_LiteFeatures(net), out_dim=1280, mean=_LITE_MEAN, std=_LITE_STD, image_size=image_size)


@torch.no_grad()
def convnet_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Pooled features of ``images`` (N, 3, H, W) → (N, F), in eval mode and without gradients (for caching)."""
    was_training = backbone.training
    backbone.eval()
    device = next((p.device for p in backbone.parameters()), images.device)
    out = [backbone(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    backbone.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(backbone, "out_dim", 0))


# ----------------------------------------------------------------------------- the full network
class DeepRankingNet(nn.Module):
    """f(·) of the paper: unit-norm embedding of an image (Fig. 3 of Deep Ranking; in the chapter
    :math:numref:`eq-dr-network`); ``multiscale=False`` is the single-scale variant.

    Args:
        convnet: module images → (B, F) (or (B, F, h, w)); None when features are always given (frozen, cached).
        convnet_dim: F.
        image_size: side of the images the shallow branches see.
        embed_dim: size of f(p) (paper 4096).
        multiscale: with the two shallow branches (True) or the ConvNet branch alone (False).
        frozen: the ConvNet branch's weights are not trained and it stays in eval mode.
        shallow_channels, dropout, pixel_shift: see the module docstring.
    """

    def __init__(self, convnet: nn.Module | None, convnet_dim: int, image_size: int, embed_dim: int = 256,
                 multiscale: bool = True, frozen: bool = True, shallow_channels: int = 96,
                 dropout: float = 0.4, pixel_shift: int = 0):
        super().__init__()
        if convnet is None and not frozen:
            raise ValueError("convnet=None only works with frozen=True (cached features); pass a backbone to fine-tune")
        self.convnet = convnet
        self.frozen = frozen
        self.multiscale = multiscale
        self.image_size = image_size
        self.shift = PixelShift(pixel_shift)
        if convnet is not None and frozen:
            for p in convnet.parameters():
                p.requires_grad_(False)
        self.branch4 = ShallowBranch(4, 3, 2, shallow_channels) if multiscale else None
        self.branch8 = ShallowBranch(8, 7, 4, shallow_channels) if multiscale else None
        self.shallow_dim = (self.branch4.out_dim(image_size) + self.branch8.out_dim(image_size)) if multiscale else 0
        self.convnet_dim = convnet_dim
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Linear(self.shallow_dim + convnet_dim, embed_dim)

    def train(self, mode: bool = True) -> "DeepRankingNet":
        super().train(mode)
        if self.frozen and self.convnet is not None:
            self.convnet.eval()  # frozen: BatchNorm statistics and drop-connect stay off
        return self

    @torch.no_grad()
    def init_from_convnet(self, features: torch.Tensor | None = None, shallow_scale: float = 0.0,
                          basis: tuple[torch.Tensor, torch.Tensor] | None = None) -> "DeepRankingNet":
        """Start the linear embedding from the pretrained ConvNet's similarity (our departure; the paper
        does not say how its embedding is initialised).

        The ConvNet block of the embedding's weight becomes the top ``embed_dim`` principal directions
        P (rows) of the L2-normalised ``features`` (N, F) (e.g. the training images' cached features),
        the bias −P μ (μ their mean), and the shallow block is multiplied by ``shallow_scale``
        (0: the shallow branches start silent and grow from the gradient). At initialisation
        f(p) = normalise(P (c_p − μ)), so the squared distance of Eq. (1) orders neighbours as the
        ConvNet's cosine does, up to the dropped directions. With ``embed_dim`` > F (the paper's 4,096 over
        a 1,280-d ConvNet) the extra rows start as the shallow block does (times ``shallow_scale``).
        ``basis = (μ, P)`` from :func:`convnet_pca` skips recomputing it (several models, one basis).
        """
        mu, vh = convnet_pca(features, self.embed.out_features) if basis is None else basis
        if vh.shape[1] != self.convnet_dim:
            raise ValueError(f"features must be (N, convnet_dim={self.convnet_dim}), got {vh.shape[1]} columns")
        d = min(self.embed.out_features, vh.shape[0])
        w = self.embed.weight  # (embed_dim, shallow_dim + F)
        sd = self.shallow_dim
        w[:d, sd:] = vh[:d].to(w.dtype)
        w[d:, sd:] *= shallow_scale
        w[:, :sd] *= shallow_scale
        self.embed.bias[:d] = -(vh[:d] @ mu).to(w.dtype)
        self.embed.bias[d:] *= shallow_scale
        return self

    def convnet_branch(self, images: torch.Tensor | None, convnet_features: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised ConvNet features (B, F), from cache if given."""
        if convnet_features is None:
            if self.convnet is None or images is None:
                raise ValueError("no ConvNet branch: pass convnet_features (the cached pooled features)")
            if self.frozen:
                with torch.no_grad():
                    convnet_features = self.convnet(images)
            else:
                convnet_features = self.convnet(images)
        if convnet_features.ndim == 4:
            convnet_features = convnet_features.mean(dim=(2, 3))
        if convnet_features.shape[-1] != self.convnet_dim:
            raise ValueError(f"ConvNet features have {convnet_features.shape[-1]} dims, the network expects convnet_dim={self.convnet_dim}")
        return l2_normalize(convnet_features)  # (B, F)

    def shallow_branches(self, images: torch.Tensor) -> torch.Tensor:
        """Concatenated shallow outputs, L2-normalised: (B, shallow_dim)."""
        s = torch.cat([self.branch4(images), self.branch8(images)], dim=1)  # (B, shallow_dim)
        return l2_normalize(s)

    def forward(self, images: torch.Tensor | None, convnet_features: torch.Tensor | None = None) -> torch.Tensor:
        """f(p): (B, embed_dim) unit vectors.

        Args:
            images: (B, 3, image_size, image_size) in [0, 1] (may be None for the single-scale variant
                with cached features).
            convnet_features: (B, F) cached pooled ConvNet features of the same images (frozen branch).
        """
        if images is not None:
            if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
                raise ValueError(f"images are {tuple(images.shape[-2:])}, the network was built for image_size={self.image_size}")
            images = self.shift(images)
        parts = []
        if self.multiscale:
            if images is None:
                raise ValueError("the multiscale network needs the images for its shallow branches")
            parts.append(self.shallow_branches(images))
        parts.append(self.convnet_branch(images, convnet_features))
        x = self.dropout(torch.cat(parts, dim=1))  # (B, shallow_dim + F)
        return l2_normalize(self.embed(x))  # (B, embed_dim)


@torch.no_grad()
def convnet_pca(features, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean μ (F,) and the top-``k`` principal directions P (≤ k, F) (rows, by decreasing variance) of the
    L2-normalised ``features`` (N, F), in float64, from the F × F covariance (cheap for N ≫ F)."""
    c = l2_normalize(torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features,
                                     dtype=torch.float64))  # (N, F)
    if c.ndim != 2 or len(c) < 2:
        raise ValueError(f"features must be (N >= 2, F), got {tuple(c.shape)}")
    mu = c.mean(0)  # (F,)
    x = c - mu
    evals, evecs = torch.linalg.eigh(x.T @ x)  # ascending, (F,), (F, F)
    k = min(k, c.shape[1], len(c) - 1)
    return mu, evecs[:, -k:].flip(1).T.contiguous()  # (k, F)


def build_network(cfg: Config, convnet: nn.Module | None = None, convnet_dim: int = 1280) -> DeepRankingNet:
    """A :class:`DeepRankingNet` from a :class:`~xmlib.deepranking.config.Config`.

    With ``cfg.convnet == "finetune"`` and no ``convnet`` given, the pretrained EfficientNet-Lite0 is loaded.
    """
    frozen = cfg.convnet == "frozen"
    if convnet is None and not frozen:
        convnet = efficientnet_lite0_backbone(cfg.convnet_image_size)
    if convnet is not None:
        convnet_dim = getattr(convnet, "out_dim", convnet_dim)
    return DeepRankingNet(convnet, convnet_dim, cfg.image_size, cfg.embed_dim, cfg.multiscale, frozen,
                          cfg.shallow_channels, cfg.dropout, cfg.pixel_shift)


def tiny_cnn(out_dim: int = 16, seed: int = 0) -> PooledBackbone:
    """A small random CNN standing in for the pretrained ConvNet in tests."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, out_dim, 3, stride=2, padding=1), nn.ReLU())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (1.0 / math.sqrt(max(p[0].numel(), 1))))
    return PooledBackbone(net, out_dim=out_dim)
