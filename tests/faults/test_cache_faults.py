"""Damaged feature caches: a chunk of the feature store (or a cached feature list) with too few rows,
NaN, cut short, with a changed byte or without its manifest is named, deleted and computed again on its
own; the next load gives the bytes of a clean build. The network is replaced by a fast deterministic
stand-in (what is tested is the cache, not the features)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from xmlib.core.io import DataFormatError
from xmlib.core.manifest import array_entry
from xmlib.data import features as F


def _fake_compute(seen):
    def compute(paths, size, batch_size, device, bar):
        seen.extend(p.name for p in paths)
        pooled = np.stack([np.random.default_rng(zlib.crc32(p.name.encode())).standard_normal(F.FEATURE_DIM)
                           for p in paths]).astype(np.float32)  # (N, 1280)
        grid = (pooled[:, None, :] + np.arange((size // 32) ** 2)[None, :, None]).astype(np.float16)  # (N, R, 1280)
        bar.update(len(paths))
        return pooled, grid
    return compute


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Four pictures, a fresh cache, chunks of two pictures; ``seen`` lists the pictures computed."""
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(F, "_CHUNK", 2)
    seen: list[str] = []
    monkeypatch.setattr(F, "_compute", _fake_compute(seen))
    pics = []
    for i in range(4):
        pics.append(tmp_path / f"p{i}.png")
        pics[-1].write_bytes(bytes([i]) * 10)
    return pics, seen


def features(pics, key, kind="grid"):
    return F.image_features(pics, kind, size=64, cache_key=key)


def first_chunk(pics, kind="grid"):
    """The file and manifest of the chunk holding the first two pictures."""
    store = F.FeatureStore(64)
    name = F._list_hash([F._path_key(p) for p in pics[:2]])
    return store.root / f"{kind}-{name}.npy", store.root / f"chunk-{name}.json"


def rewrite(path, manifest, arr, kind="grid"):
    """Replace a chunk by ``arr`` with a manifest that agrees with the file (only the deeper checks can tell)."""
    np.save(path, arr)
    m = json.loads(manifest.read_text())
    m["files"][kind] = array_entry(path, arr)
    manifest.write_text(json.dumps(m))


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01  # lowest bit of a float16's mantissa: still finite, same size
    path.write_bytes(bytes(data))


def too_few_rows(path, manifest):
    rewrite(path, manifest, np.load(path)[:1])


def nan_row(path, manifest):
    arr = np.load(path)
    arr[1, 0, 0] = np.nan
    rewrite(path, manifest, arr)


def truncated(path, manifest):
    path.write_bytes(path.read_bytes()[:-100])


def no_manifest(path, manifest):
    """No manifest and a file that fails a check (NaN): it cannot be adopted (see the test below)."""
    arr = np.load(path)
    arr[0, 0, 0] = np.nan
    np.save(path, arr)
    manifest.unlink()


@pytest.mark.parametrize("damage, problem", [
    (too_few_rows, "1 rows for 2 pictures"),
    (nan_row, "holds NaN or inf"),
    (truncated, "bytes where the manifest records"),
    (no_manifest, "the manifest is missing"),
])
def test_bad_chunk_is_named_and_recomputed_alone(cache, capsys, damage, problem):
    pics, seen = cache
    clean = features(pics, "a")
    path, manifest = first_chunk(pics)
    damage(path, manifest)
    seen.clear()
    again = features(pics, "b")  # another list: read from the store
    out = capsys.readouterr().out
    blamed = manifest if damage is no_manifest else path
    assert str(blamed) in out and problem in out and "computed again" in out
    assert seen == ["p0.png", "p1.png"]  # only the damaged chunk
    assert again.tobytes() == clean.tobytes()
    seen.clear()
    assert features(pics, "c").tobytes() == clean.tobytes() and seen == []
    assert F.image_features(pics, "pooled", size=64, cache_key="c").shape == (4, 1280)


def test_a_chunk_from_before_manifests_is_checked_and_adopted_not_recomputed(cache, capsys):
    """A cache written before manifests existed: each good chunk gets a manifest (keys from the index,
    rows, finite values, sizes and hashes as they are) instead of being computed again."""
    pics, seen = cache
    clean = features(pics, "a")
    path, manifest = first_chunk(pics)
    manifest.unlink()
    seen.clear()
    again = features(pics, "b")
    out = capsys.readouterr().out
    assert str(manifest) in out and "adopted" in out and "computed again" not in out
    assert seen == [] and again.tobytes() == clean.tobytes()
    m = json.loads(manifest.read_text())
    assert m["adopted"] is True and m["code"] is None and m["files"]["grid"]["shape"][0] == 2
    assert F.verify_cache() == []  # and the full check accepts it from now on


def other_chunks_content(path):
    """Another chunk's file (the next two pictures' features: same shape, same size) in this one's place."""
    others = [p for p in path.parent.glob("grid-*.npy") if p != path]
    path.write_bytes(others[0].read_bytes())


@pytest.mark.parametrize("damage", [flip_byte, other_chunks_content])
def test_changed_content_is_caught_by_the_full_check(cache, capsys, damage):
    pics, seen = cache
    clean = features(pics, "a")
    path, _ = first_chunk(pics)
    damage(path)
    assert F.verify_cache() == [(path, "its sha256 differs from the manifest's (the content changed)")]
    assert str(path) in capsys.readouterr().out
    seen.clear()
    assert features(pics, "b").tobytes() == clean.tobytes() and seen == ["p0.png", "p1.png"]
    assert F.verify_cache() == []


def test_prepare_verifies_the_feature_cache(cache, monkeypatch):
    from xmlib.data import __main__ as cli
    from xmlib.data import assets

    pics, _ = cache
    features(pics, "a")
    path, _ = first_chunk(pics)
    flip_byte(path)
    monkeypatch.setattr(assets, "fetch_all", lambda *a, **k: {})
    cli.prepare("smoke", benchmarks=())
    assert not path.exists()


def test_after_a_crash_the_store_is_checked_in_full(cache, capsys):
    pics, seen = cache
    clean = features(pics, "a")
    path, _ = first_chunk(pics)
    flip_byte(path)
    (path.parent / ".grid-x.999999999.abc.part.npy").write_bytes(b"half")  # left by a killed writer
    seen.clear()
    assert features(pics, "b").tobytes() == clean.tobytes() and seen == ["p0.png", "p1.png"]
    assert "sha256 differs" in capsys.readouterr().out
    assert not list(path.parent.glob(".*.part*"))


@pytest.mark.parametrize("damage, problem", [
    (lambda p: rewrite_list(p, np.load(p)[:3]), "3 rows for 4 inputs"),
    (lambda p: p.write_bytes(p.read_bytes()[:-10]), "bytes where the manifest records"),
    (lambda p: p.with_suffix(".json").unlink(), "manifest is missing"),
])
def test_bad_cached_list_is_gathered_again(cache, capsys, damage, problem):
    pics, seen = cache
    clean = features(pics, "a", "pooled")
    dest = F.features_cache_path(pics, "pooled", 64, "a")
    damage(dest)
    seen.clear()
    assert features(pics, "a", "pooled").tobytes() == clean.tobytes() and seen == []  # the store still has them
    out = capsys.readouterr().out
    assert str(dest) in out and problem in out


def rewrite_list(dest, arr):
    np.save(dest, arr)
    side = dest.with_suffix(".json")
    m = json.loads(side.read_text())
    m["file"] = array_entry(dest, arr)
    side.write_text(json.dumps(m))


def test_nan_features_are_refused_when_written(cache, monkeypatch):
    pics, seen = cache
    real = F._compute

    def with_nan(paths, *args):
        pooled, grid = real(paths, *args)
        pooled[-1, 3] = np.nan
        return pooled, grid

    monkeypatch.setattr(F, "_compute", with_nan)
    with pytest.raises(DataFormatError) as e:
        features(pics, "a")
    assert str(pics[1]) in str(e.value) and "NaN or inf" in str(e.value) and "nothing was stored" in str(e.value)
    assert not list(F.FeatureStore(64).root.glob("*.npy"))


def test_unreadable_index_is_rebuilt_from_the_manifests(cache, capsys):
    pics, seen = cache
    clean = features(pics, "a")
    index = F.FeatureStore(64).root / "index.json"
    index.write_text('{"broken')
    seen.clear()
    assert features(pics, "b").tobytes() == clean.tobytes() and seen == []
    assert "rebuilding the index" in capsys.readouterr().out
