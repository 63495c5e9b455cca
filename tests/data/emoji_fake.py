"""A tiny fake emoji corpus in the three packages' layouts (for the emoji benchmark and golden tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from xmlib.data import assets as A
from xmlib.data.sources.emoji import ASSET_OF, DESIGNERS

SUBCATS = {"face-smiling": "Smileys & Emotion", "animal-bird": "Animals & Nature", "food-fruit": "Food & Drink"}


def _png(path: Path, colour, shape: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    px = im.load()
    for y in range(64):
        for x in range(64):
            inside = (x - 32) ** 2 + (y - 32) ** 2 < (10 + 4 * shape) ** 2 if shape % 2 else abs(x - 32) + abs(y - 32) < 12 + 3 * shape
            if inside:
                px[x, y] = tuple(colour) + (255,)
    im.save(path)


def _svg(path: Path, colour, shape: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = "#%02x%02x%02x" % tuple(colour)
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72" width="72" height="72">'
        f'<circle cx="36" cy="36" r="{12 + 3 * shape}" fill="{fill}" stroke="#000" stroke-width="2"/></svg>'
    )


def make_fake_corpus(root: Path, seed: int = 0) -> dict[str, Path]:
    """3 subcategories x 6 concepts, one concept whose OpenMoji hexcode lacks FE0F, one Component
    concept (excluded), one concept missing from OpenMoji and one without a Twitter image."""
    rng = np.random.default_rng(seed)
    src = {d: root / d for d in DESIGNERS}
    records, om = [], []
    order = 0
    for s, (sub, cat) in enumerate(SUBCATS.items()):
        for k in range(6):
            code = f"1F{s}{k:02X}"
            unified = f"{code}-FE0F" if (s, k) == (0, 0) else code
            records.append({"name": f"{sub} thing {k}", "unified": unified, "image": unified.lower() + ".png",
                            "short_name": f"t{s}{k}", "category": cat, "subcategory": sub, "sort_order": order,
                            "has_img_google": True, "has_img_twitter": True})
            om.append({"hexcode": code, "group": cat, "subgroups": sub, "annotation": f"thing {k}"})
            order += 1
    records.append({"name": "SKIN TONE", "unified": "1F3FB", "image": "1f3fb.png", "category": "Component",
                    "subcategory": "skin-tone", "sort_order": 99, "has_img_google": True, "has_img_twitter": True})
    om.append({"hexcode": "1F3FB", "group": "component", "subgroups": "skin-tone", "annotation": "light"})
    records.append({"name": "NOT IN OPENMOJI", "unified": "1F999", "image": "1f999.png", "category": "Food & Drink",
                    "subcategory": "food-fruit", "sort_order": 100, "has_img_google": True, "has_img_twitter": True})
    tw_records = [dict(r) for r in records]
    tw_records.append({"name": "NO TWITTER", "unified": "1F998", "image": "1f998.png", "category": "Food & Drink",
                       "subcategory": "food-fruit", "sort_order": 101, "has_img_google": True, "has_img_twitter": False})
    records.append(dict(tw_records[-1]))
    om.append({"hexcode": "1F998", "group": "food-drink", "subgroups": "food-fruit", "annotation": "nt"})
    for d in ("google", "twitter"):
        (src[d] / "package").mkdir(parents=True)
        (src[d] / A.EMOJI_JSON).write_text(json.dumps(records if d == "google" else tw_records))
    (src["openmoji"] / "package" / "data").mkdir(parents=True)
    (src["openmoji"] / A.OPENMOJI_JSON).write_text(json.dumps(om))
    for r, o in zip(records, om + [None] * 10):
        base = rng.integers(0, 200, size=3)
        shape = int(rng.integers(0, 4))
        for d in ("google", "twitter"):
            col = np.clip(base + rng.integers(-30, 30, size=3), 0, 230)
            _png(src[d] / A.EMOJI_IMG_DIR[ASSET_OF[d]] / r["image"], col, shape)
    for o in om:
        col = rng.integers(0, 230, size=3)
        _svg(src["openmoji"] / A.OPENMOJI_SVG_DIR / f"{o['hexcode']}.svg", col, int(rng.integers(0, 4)))
    # Twitter draws 1F204 exactly like 1F205 (like the flags of Norway and Svalbard): a near duplicate.
    dup = src["twitter"] / A.EMOJI_IMG_DIR["emoji-twitter"]
    (dup / "1f204.png").write_bytes((dup / "1f205.png").read_bytes())
    return {ASSET_OF[d]: folder for d, folder in src.items()}  # asset name -> extracted folder


def cheap_features(paths):
    """A stand-in for the pretrained CNN: 8x8 pixels (non-negative, like ReLU6 features)."""
    from xmlib.data.images import load_image

    return np.stack([np.asarray(load_image(p, 8), dtype=np.float32).ravel() / 255.0 + 0.01 for p in paths])
