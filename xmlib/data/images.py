"""Loading pictures (PNG, SVG) as RGB, turning them into tensors, and showing them in a grid.

Every picture in the book's assets is drawn art with transparency (clipart, stamps, emoji), so one
rule applies everywhere: transparent pixels become **white**, and a picture asked for at ``size`` is
scaled to fit inside ``size`` x ``size`` (aspect ratio kept) and centred on a white square. SVGs are
rendered with ``cairosvg`` directly at the target size.

A few OpenClipart PNGs exceed 160 megapixels (up to 623 MP: 2.5 GB decoded). Pillow refuses those as
decompression bombs. Only for files inside the OpenClipart assets is the limit lifted
(:func:`allow_huge_images`); where such a PNG has its SVG source in the ``openclipart-svg`` asset, the
SVG is rendered at the target size instead of decoding the huge PNG.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE_MEAN",
    "LITE_STD",
    "IMAGE_SUFFIXES",
    "ImageLoadError",
    "allow_huge_images",
    "load_image",
    "render_svg",
    "svg_declares_entities",
    "to_tensor",
    "normalise_uint8",
    "to_batch",
    "montage",
]

#: torchvision's ImageNet statistics (for models trained with them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The normalisation the ImageNet-pretrained EfficientNet-Lite0 weights expect: (pixel - 127) / 128,
#: i.e. mean 127/255 and std 128/255 on [0, 1] values (the TensorFlow Lite models' preprocessing).
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")

#: Above this many pixels an OpenClipart PNG is replaced by its SVG source when one exists.
HUGE_PIXELS = 40_000_000
_BACKGROUND = (255, 255, 255)
_pil_lock = threading.RLock()


class ImageLoadError(ValueError):
    """A picture cannot be read or rendered; the message names the file."""


@contextlib.contextmanager
def allow_huge_images() -> Iterator[None]:
    """Lift Pillow's decompression-bomb limit inside the block (restored afterwards).

    Use it only for trusted files known to be huge (the OpenClipart assets)."""
    with _pil_lock:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _is_openclipart(path: Path) -> bool:
    parts = path.parts
    return "openclipart" in parts or any(p.startswith("openclipart-") for p in parts)


def _svg_counterpart(path: Path) -> Path | None:
    """``.../openclipart-png/usr/share/openclipart/png/X/y.png`` → the matching SVG, if fetched."""
    parts = list(path.parts)
    try:
        i = len(parts) - 1 - parts[::-1].index("png")
    except ValueError:
        return None
    if i == 0 or parts[i - 1] != "openclipart":
        return None
    parts[i] = "svg"
    parts = [("openclipart-svg" if p == "openclipart-png" else p) for p in parts]
    svg = Path(*parts).with_suffix(".svg")
    return svg if svg.is_file() else None


def _flatten(img: Image.Image) -> Image.Image:
    """Any mode → RGB, transparent pixels composited onto white."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, _BACKGROUND + (255,))
        bg.alpha_composite(img)
        return bg.convert("RGB")
    return img.convert("RGB")


def _fit_square(img: Image.Image, size: int) -> Image.Image:
    """Scale ``img`` (RGB) to fit inside ``size`` x ``size`` and centre it on white."""
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS,
                         reducing_gap=3.0 if scale < 1 else None)
    if (nw, nh) == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), _BACKGROUND)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def svg_declares_entities(path: str | os.PathLike) -> bool:
    """True for an SVG whose DOCTYPE declares XML entities (Adobe Illustrator exports). The SVG
    renderer parses with ``defusedxml``, which refuses entities, so such a file cannot be rendered:
    the readers in :mod:`xmlib.data.sources` leave it out."""
    return b"<!ENTITY" in Path(path).read_bytes()


def render_svg(path: str | os.PathLike, size: int | None = None) -> Image.Image:
    """Render an SVG with cairosvg; with ``size`` the longer side is ``size`` pixels. RGB on white."""
    import cairosvg  # imported here: loads the cairo library

    path = Path(path)
    try:
        if size is None:
            png = cairosvg.svg2png(url=str(path))
        else:
            png = cairosvg.svg2png(url=str(path), output_width=size)
            with Image.open(io.BytesIO(png)) as probe:
                w, h = probe.size
            if h > size:  # taller than wide: render again with the height fixed
                png = cairosvg.svg2png(url=str(path), output_height=size)
        with allow_huge_images() if size is not None else contextlib.nullcontext():
            img = Image.open(io.BytesIO(png))
            img.load()
    except Exception as err:  # cairosvg raises many types (XML, cairo, value errors)
        raise ImageLoadError(f"cannot render SVG {path}: {type(err).__name__}: {err}") from err
    return _flatten(img)


def load_image(path: str | os.PathLike, size: int | None = None) -> Image.Image:
    """Load a picture as an RGB ``PIL.Image`` (transparency → white).

    ``size=None`` keeps the native size (SVG: its intrinsic size). With ``size`` the picture is fitted
    inside ``size`` x ``size`` (aspect ratio kept) and centred on a white square of exactly that size.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"image file {path} does not exist (is its asset fetched? `python -m xmlib.data fetch`)")
    if path.suffix.lower() == ".svg":
        img = render_svg(path, size)
        return _fit_square(img, size) if size is not None else img
    huge_ok = _is_openclipart(path)
    try:
        with allow_huge_images() if huge_ok else contextlib.nullcontext():
            with Image.open(path) as im:
                w, h = im.size
                if huge_ok and size is not None and w * h > HUGE_PIXELS:
                    svg = _svg_counterpart(path)
                    if svg is not None:
                        return _fit_square(render_svg(svg, size), size)
                if size is not None and im.format == "JPEG":
                    im.draft("RGB", (size, size))  # decode at a reduced scale
                im.load()
                img = _flatten(im)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path} is too large for Pillow's safety limit ({err}); only OpenClipart files "
                             "are allowed to exceed it") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"cannot read image {path}: {err}") from err
    if size is not None:
        if huge_ok and max(img.size) > 4 * size:
            img.thumbnail((4 * size, 4 * size), Image.Resampling.BOX)  # cheap first reduction
        img = _fit_square(img, size)
    return img


def to_tensor(
    img: Image.Image | np.ndarray,
    mean: Sequence[float] | None = LITE_MEAN,
    std: Sequence[float] | None = LITE_STD,
) -> torch.Tensor:
    """RGB picture → float32 tensor (3, H, W): values /255, then ``(x - mean) / std`` per channel.

    The default is the ImageNet normalisation of the project's EfficientNet-Lite0 weights
    (:data:`LITE_MEAN`, :data:`LITE_STD`); pass :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` for a
    torchvision-style model, or ``mean=std=None`` to keep values in [0, 1]. A uint8 array (H, W, 3)
    is accepted as well.
    """
    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"to_tensor expects an RGB image or a uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
    return normalise_uint8(np.array(arr, dtype=np.uint8, copy=True)[None], mean, std)[0]  # (3, H, W)


def normalise_uint8(batch: np.ndarray, mean: Sequence[float] | None = LITE_MEAN,
                    std: Sequence[float] | None = LITE_STD) -> torch.Tensor:
    """A uint8 batch (B, H, W, 3) → float32 (B, 3, H, W) in ``channels_last`` memory (no copy of the
    layout): values /255, then ``(x - mean) / std`` per channel, the same float32 operations as
    :func:`to_tensor` applied to each picture, so the values are the same bits. ``batch`` is used in
    place (not copied): pass an array that nothing else writes to."""
    if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"normalise_uint8 expects a uint8 (B, H, W, 3) array, got {batch.dtype} {batch.shape}")
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (B, 3, H, W), channels_last
    if mean is not None or std is not None:
        m = torch.tensor(mean if mean is not None else (0.0, 0.0, 0.0), dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std if std is not None else (1.0, 1.0, 1.0), dtype=torch.float32).view(1, 3, 1, 1)
        x = (x - m) / s
    return x


def to_batch(images: Sequence[Image.Image], **kwargs) -> torch.Tensor:
    """Stack pictures of equal size into (B, 3, H, W) with :func:`to_tensor`."""
    return torch.stack([to_tensor(im, **kwargs) for im in images])


def montage(
    images: Sequence[Image.Image | str | os.PathLike],
    ncols: int = 8,
    labels: Sequence[str] | None = None,
    *,
    tile: int = 96,
    pad: int = 4,
    label_lines: int = 2,
) -> Image.Image:
    """A grid of pictures (paths or PIL images) with optional captions under each tile, as one RGB image.

    Tiles are ``tile`` pixels square (pictures fitted on white); captions are wrapped to
    ``label_lines`` lines. Jupyter shows the returned ``PIL.Image`` inline.
    """
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"montage: {len(images)} images but {len(labels)} labels")
    tiles = [load_image(im, tile) if not isinstance(im, Image.Image) else _fit_square(_flatten(im), tile)
             for im in images]
    n = len(tiles)
    nrows = max(1, math.ceil(n / ncols))
    font = ImageFont.load_default()
    line_h = 12
    text_h = (label_lines * line_h + 2) if labels is not None else 0
    cell_w, cell_h = tile + pad, tile + text_h + pad
    sheet = Image.new("RGB", (ncols * cell_w + pad, nrows * cell_h + pad), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    max_chars = max(4, tile // 6)
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncols)
        x0, y0 = pad + c * cell_w, pad + r * cell_h
        sheet.paste(t, (x0, y0))
        draw.rectangle([x0 - 1, y0 - 1, x0 + tile, y0 + tile], outline=(200, 200, 200))
        if labels is not None:
            words, lines, cur = str(labels[k]).split(), [], ""
            for w in words:
                if cur and len(cur) + 1 + len(w) > max_chars:
                    lines.append(cur)
                    cur = w
                else:
                    cur = f"{cur} {w}".strip()
            lines.append(cur)
            if len(lines) > label_lines:
                lines = lines[:label_lines]
                lines[-1] = lines[-1][: max_chars - 3] + "..."
            for j, line in enumerate(lines):
                draw.text((x0, y0 + tile + 2 + j * line_h), line[:max_chars], fill=(0, 0, 0), font=font)
    return sheet
