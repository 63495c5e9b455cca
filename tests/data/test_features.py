"""Image loading and pretrained features (EfficientNet-Lite0, MiniLM), checked against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xmlib.data import features as F
from xmlib.data import images as I


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def test_png_transparency_becomes_white_and_size_is_fitted(toy_pictures):
    red = toy_pictures[0]  # 80 x 60, transparent around a red ellipse
    img = I.load_image(red)
    assert img.mode == "RGB" and img.size == (80, 60)
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((40, 30)) == (200, 30, 30)
    sq = I.load_image(red, size=32)
    assert sq.size == (32, 32)
    # 80 x 60 fitted into 32 x 32 → 32 x 24 centred: 4 white rows above and below
    arr = np.asarray(sq)
    assert (arr[:4] == 255).all() and (arr[-4:] == 255).all()
    assert arr[16, 16].tolist() == [200, 30, 30]


def test_svg_rendered_at_size_keeps_aspect(toy_pictures):
    svg = toy_pictures[3]  # 40 x 80, blue rectangle in the middle half
    native = I.load_image(svg)
    assert native.size == (40, 80)
    img = I.load_image(svg, size=64)
    assert img.size == (64, 64)
    arr = np.asarray(img).astype(int)
    assert (arr[:, :16] == 255).all() and (arr[:, -16:] == 255).all()  # 32 x 64 centred on 64 x 64
    assert abs(arr[32, 32] - np.array([0x10, 0x60, 0xD0])).max() <= 2
    assert tuple(arr[2, 32]) == (255, 255, 255)  # transparent → white


def test_bad_files_raise_named_errors(tmp_path):
    with pytest.raises(I.ImageLoadError, match="does not exist"):
        I.load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(I.ImageLoadError, match="junk.png"):
        I.load_image(junk)
    bad_svg = tmp_path / "bad.svg"
    bad_svg.write_text("<svg")
    with pytest.raises(I.ImageLoadError, match="bad.svg"):
        I.load_image(bad_svg)


def test_huge_limit_is_lifted_only_inside_the_context():
    before = Image.MAX_IMAGE_PIXELS
    with I.allow_huge_images():
        assert Image.MAX_IMAGE_PIXELS is None
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_tensor_matches_a_plain_loop(dtype):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    for mean, std in [(I.LITE_MEAN, I.LITE_STD), (I.IMAGENET_MEAN, I.IMAGENET_STD)]:
        got = I.to_tensor(Image.fromarray(arr), mean, std)
        assert got.shape == (3, 5, 7) and got.dtype == torch.float32
        ref = np.zeros((3, 5, 7), dtype=dtype)
        for c in range(3):
            for y in range(5):
                for x in range(7):
                    ref[c, y, x] = (arr[y, x, c] / dtype(255) - dtype(mean[c])) / dtype(std[c])
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
    raw = I.to_tensor(arr, None, None)
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1
    # the default is EfficientNet-Lite0's normalisation: (pixel - 127) / 128
    np.testing.assert_allclose(I.to_tensor(arr).numpy(), (arr.transpose(2, 0, 1) - 127.0) / 128.0, atol=1e-5)


def test_batch_normalisation_is_to_tensor_bit_for_bit():
    """The fast path normalises a whole uint8 batch at once; it must give to_tensor's bits per picture."""
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, size=(3, 9, 11, 3), dtype=np.uint8)
    batch[0, :2] = 255  # white and black pixels: the values drawn art is made of
    batch[1, :2] = 0
    for mean, std in [(I.LITE_MEAN, I.LITE_STD), (I.IMAGENET_MEAN, I.IMAGENET_STD), (None, None)]:
        got = I.normalise_uint8(batch.copy(), mean, std)
        assert got.shape == (3, 3, 9, 11) and got.is_contiguous(memory_format=torch.channels_last)
        ref = torch.stack([I.to_tensor(Image.fromarray(a), mean, std) for a in batch])
        assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="normalise_uint8"):
        I.normalise_uint8(batch.astype(np.float32))


def test_montage_grid_size(toy_pictures):
    m = I.montage(toy_pictures, ncols=3, labels=["a", "b b", "a much longer label than fits", "d"], tile=32, pad=2)
    assert m.mode == "RGB"
    assert m.size == (3 * 34 + 2, 2 * (34 + 2 * 12 + 2) + 2)
    with pytest.raises(ValueError, match="labels"):
        I.montage(toy_pictures, ncols=2, labels=["x"])


# ------------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite():
    return F.efficientnet_lite0(pretrained=True).eval()


def test_backbone_matches_the_package_model(lite, toy_pictures):
    """Our wrapper (dynamic 'same' padding) vs the package's own static-padding network at 224 px."""
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")  # static padding for 224 px
    ref.load_state_dict(lite.net.state_dict())
    ref.eval()
    x = F.preprocess(toy_pictures[:1], 224)  # (1, 3, 224, 224)
    with torch.no_grad():
        fmap = lite.feature_map(x)
        ref_fmap = ref.extract_features(x)
        assert fmap.shape == (1, 1280, 7, 7)
        torch.testing.assert_close(fmap, ref_fmap)
        # pooled = the network's own global average pool before its classifier
        pooled = fmap.mean(dim=(2, 3))
        torch.testing.assert_close(pooled, ref._avg_pooling(ref_fmap).flatten(1))
        torch.testing.assert_close(lite.net._fc(pooled), ref._fc(ref._avg_pooling(ref_fmap).flatten(1)))
        assert lite.feature_map(F.preprocess(toy_pictures[:1], 96)).shape == (1, 1280, 3, 3)


def test_backbone_float64_agrees_with_float32(lite, toy_pictures):
    import copy

    x = F.preprocess(toy_pictures[:1], 32)
    with torch.no_grad():
        p32 = lite.pooled(x)
        p64 = copy.deepcopy(lite).double().pooled(x.double())
    torch.testing.assert_close(p32.double(), p64, rtol=1e-3, atol=1e-4)


def test_pretrained_weights_are_loaded():
    a = F.efficientnet_lite0(pretrained=True).state_dict()
    b = F.efficientnet_lite0(pretrained=False).state_dict()
    assert a.keys() == b.keys()
    assert not torch.equal(a["net._conv_stem.weight"], b["net._conv_stem.weight"])
    # BN running stats come from ImageNet training, not the defaults
    assert not torch.equal(a["net._bn0.running_var"], torch.ones_like(a["net._bn0.running_var"]))


def test_backbone_is_trainable():
    model = F.efficientnet_lite0(pretrained=False).train()
    assert all(p.requires_grad for p in model.parameters())
    x = torch.randn(2, 3, 32, 32)
    model.pooled(x).sum().backward()
    assert model.net._conv_stem.weight.grad is not None and model.net._conv_stem.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# image_features: shapes, cache, determinism
# ------------------------------------------------------------------------------------------------
def test_image_features_shapes_and_grid_mean(tmp_cache, toy_pictures):
    pooled = F.image_features(toy_pictures, "pooled", size=64, batch_size=3, cache_key="t")
    grid = F.image_features(toy_pictures, "grid", size=64, batch_size=3, cache_key="t")
    assert pooled.shape == (4, 1280) and pooled.dtype == np.float32
    assert grid.shape == (4, 4, 1280) and grid.dtype == np.float32  # (64/32)^2 = 4 regions
    # pooled is the mean of the grid (the grid goes through float16 on disk)
    np.testing.assert_allclose(grid.mean(axis=1), pooled, rtol=2e-3, atol=2e-3)
    assert np.load(F.features_cache_path(toy_pictures, "grid", 64, "t")).dtype == np.float16
    # independent reference: the eager backbone on a hand-made batch. The features come from the traced,
    # frozen network (BatchNorm folded into the convolutions), which agrees to the stated tolerance
    with torch.no_grad():
        ref = F.efficientnet_lite0().eval().pooled(F.preprocess(toy_pictures, 64)).numpy()
    np.testing.assert_allclose(pooled, ref, rtol=1e-4, atol=5e-5)
    assert np.abs(pooled - ref).max() <= 1e-5 * np.abs(ref).max() * 10
    assert F.image_features(toy_pictures, "grid", size=64, cache_key="t", dtype=np.float16).dtype == np.float16


def test_fast_compute_gives_the_plain_paths_bits(toy_pictures):
    """_compute (batch normalised at once, loading overlapped with the network, the allocator keeping
    its memory) against the plain path: each picture loaded, to_tensor, stacked, the same frozen
    network on the same batches. Same operations on the same values: the bytes must be equal."""
    size, batch_size = 64, 3

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    pooled, grid = F._compute(toy_pictures, size, batch_size, torch.device("cpu"), bar)
    assert bar.n == len(toy_pictures)
    fmap = F._frozen_feature_map("cpu", size)
    ref_pooled, ref_grid = [], []
    with torch.no_grad():
        for i in range(0, len(toy_pictures), batch_size):
            x = torch.stack([I.to_tensor(I.load_image(p, size)) for p in toy_pictures[i: i + batch_size]])
            m = fmap(x.contiguous(memory_format=torch.channels_last))  # (B, 1280, 2, 2)
            ref_pooled.append(m.mean(dim=(2, 3)).numpy())
            ref_grid.append(m.flatten(2).transpose(1, 2).numpy().astype(np.float16))
    assert pooled.tobytes() == np.concatenate(ref_pooled).tobytes()
    assert grid.tobytes() == np.concatenate(ref_grid).tobytes()
    # another allocator setting (a lower limit) changes no arithmetic either
    with F._reuse_freed_memory(1 << 20):
        again, _ = F._compute(toy_pictures, size, batch_size, torch.device("cpu"), bar)
    assert again.tobytes() == pooled.tobytes()


def test_image_features_deterministic_and_cached(tmp_cache, toy_pictures, monkeypatch):
    a = F.image_features(toy_pictures, "pooled", size=64, use_cache=False)
    b = F.image_features(toy_pictures, "pooled", size=64, use_cache=False)
    assert a.tobytes() == b.tobytes()
    c = F.image_features(toy_pictures, "pooled", size=64, cache_key="det")
    path = F.features_cache_path(toy_pictures, "pooled", 64, "det")
    assert path.exists() and path.parent == tmp_cache / "features" / "det"
    assert c.tobytes() == a.tobytes()

    def boom(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(F, "_compute", boom)
    d = F.image_features(toy_pictures, "pooled", size=64, cache_key="det")
    assert d.tobytes() == a.tobytes()
    # another order, another benchmark, the other kind: no picture goes through the network again
    # (rows follow the input order; the store holds both kinds from one pass)
    e = F.image_features(toy_pictures[::-1], "pooled", size=64, cache_key="other")
    assert e.tobytes() == a[::-1].tobytes()
    assert F.image_features(toy_pictures[1:3], "grid", size=64, cache_key="other").shape == (2, 4, 1280)
    with pytest.raises(AssertionError, match="cache miss"):  # a resolution not stored yet is computed
        F.image_features(toy_pictures, "pooled", size=96, cache_key="det")


def test_the_store_computes_each_picture_once_with_the_same_bytes(tmp_cache, toy_pictures, monkeypatch):
    """Benchmarks share pictures: features computed for one list are reused, bit for bit, by another."""
    alone = {i: F.image_features([p], "pooled", size=64, use_cache=False)[0] for i, p in enumerate(toy_pictures)}
    real, seen = F._compute, []

    def counting(paths, *args, **kwargs):
        seen.extend(paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(F, "_compute", counting)
    F.image_features(toy_pictures[:3], "pooled", size=64, batch_size=2, cache_key="a")
    both = F.image_features(toy_pictures[1:], "grid", size=64, batch_size=2, cache_key="b")
    pooled = F.image_features(toy_pictures, "pooled", size=64, cache_key="c")
    assert sorted(map(str, seen)) == sorted(map(str, toy_pictures))  # each picture once
    for i in range(len(toy_pictures)):  # the same bytes whatever the batch it was computed in
        assert pooled[i].tobytes() == alone[i].tobytes()
    assert both.shape == (3, 4, 1280)


def test_interrupted_feature_run_resumes_from_chunks(tmp_cache, toy_pictures, monkeypatch):
    monkeypatch.setattr(F, "_CHUNK", 2)
    real = F._compute
    calls = []

    def flaky(paths, *args, **kwargs):
        calls.append(len(paths))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second chunk
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(F, "_compute", flaky)
    with pytest.raises(KeyboardInterrupt):
        F.image_features(toy_pictures, "pooled", size=64, cache_key="resume")
    assert not F.features_cache_path(toy_pictures, "pooled", 64, "resume").exists()
    out = F.image_features(toy_pictures, "pooled", size=64, cache_key="resume")
    assert calls == [2, 2, 2]  # first chunk not recomputed
    ref = F.image_features(toy_pictures, "pooled", size=64, use_cache=False)
    np.testing.assert_array_equal(out, ref)
    assert not list((tmp_cache / "features").rglob("*.part*"))  # nothing half-written left behind


def test_image_features_bad_arguments(tmp_cache, toy_pictures, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        F.image_features(toy_pictures, "mean")
    with pytest.raises(ValueError, match="multiple of 32"):
        F.image_features(toy_pictures, size=100)
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        F.image_features([tmp_path / "nothere.png"])
    with pytest.raises(ValueError, match="cache_key"):
        F.image_features(toy_pictures, cache_key="../escape")
    assert F.image_features([], "grid", size=64).shape == (0, 4, 1280)


# ------------------------------------------------------------------------------------------------
# MiniLM
# ------------------------------------------------------------------------------------------------
def test_text_embeddings_shape_norm_and_meaning(tmp_cache):
    texts = ["a red kangaroo", "a kangaroo, red in colour", "the stop sign at the crossing"]
    e = F.text_embeddings(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e.astype(np.float64), axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    again = F.text_embeddings(texts, cache_key="txt")
    assert again.tobytes() == e.tobytes()
    assert F.text_embeddings(texts, cache_key="txt").tobytes() == e.tobytes()  # from the cache
    assert len(list((tmp_cache / "features" / "txt").glob("*.npy"))) == 1
    with pytest.raises(TypeError):
        F.text_embeddings("one string")


# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_huge_openclipart_png_loads_small(real_asset):
    from xmlib.data.assets import CLIPART_PNG_DIR

    root = real_asset("openclipart-png")
    real_asset("openclipart-svg")
    path = root / CLIPART_PNG_DIR / "signs_and_symbols" / "stop_sign_miguel_s_nchez_.png"  # 623 MP
    img = I.load_image(path, size=224)
    assert img.size == (224, 224) and img.mode == "RGB"
    assert np.asarray(img).std() > 5  # not a blank canvas
