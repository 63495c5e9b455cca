"""Asset fetching: checksums, atomic resume, idempotence, safe extraction, clear errors (no network)."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from xmlib.data import assets as A


def make_tgz(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A gzipped tar in memory: ``{member name: content}`` plus ``{link name: target}`` symlinks.

    Names are written verbatim, so unsafe names ("../x", "/abs") can be built on purpose."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


GOOD = make_tgz({"package/a.txt": b"alpha", "package/sub/b.txt": b"beta"})
SHA = hashlib.sha256(GOOD).hexdigest()


@pytest.fixture
def toy(monkeypatch):
    """Register a toy npm asset whose pinned file is GOOD."""
    asset = A.Asset("toy", "npm", "toy-pkg", "1.0.0", "toy-pkg-1.0.0.tgz", SHA, "MIT", "a toy")
    monkeypatch.setitem(A.ASSETS, "toy", asset)
    return asset


class FakeDownloader:
    """Serves a sequence of payloads (one per call); counts calls."""

    def __init__(self, *payloads: bytes, fail_after_partial: bool = False):
        self.payloads = list(payloads)
        self.calls = 0
        self.fail_after_partial = fail_after_partial

    def __call__(self, asset, folder: Path) -> Path:
        data = self.payloads[min(self.calls, len(self.payloads) - 1)]
        self.calls += 1
        out = folder / asset.filename
        if self.fail_after_partial:
            out.write_bytes(data[: len(data) // 2])  # a half download, then the process "dies"
            raise KeyboardInterrupt
        out.write_bytes(data)
        return out


# ------------------------------------------------------------------------------------------------
def test_registry_is_complete_and_well_formed():
    assert set(A.ASSETS) == {"openclipart-png", "openclipart-svg", "tuxpaint-stamps", "fashion-mnist",
                             "emoji-google", "emoji-twitter", "openmoji"}
    for name, a in A.ASSETS.items():
        assert a.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", a.sha256), name
        assert a.client in ("apt", "npm")
        if a.client == "apt":
            assert a.spec == f"{a.package}={a.version}" and a.filename.endswith("_all.deb")
        else:
            assert a.spec == f"{a.package}@{a.version}" and a.filename == f"{a.package}-{a.version}.tgz"
    assert len({a.sha256 for a in A.ASSETS.values()}) == 7
    assert A.ASSETS["emoji-google"].spec == "emoji-datasource-google@16.0.0"
    assert A.ASSETS["openclipart-png"].spec == "openclipart-png=1:0.18+dfsg-19"


def test_fetch_extracts_verifies_and_stamps(tmp_cache, toy):
    dl = FakeDownloader(GOOD)
    root = A.fetch("toy", downloader=dl)
    assert root == tmp_cache / "assets" / "toy"
    assert (root / "package/a.txt").read_bytes() == b"alpha"
    assert (root / "package/sub/b.txt").read_bytes() == b"beta"
    assert (root / ".complete").read_text().strip() == SHA
    assert (tmp_cache / "downloads" / toy.filename).read_bytes() == GOOD
    assert A.asset_root("toy") == root and A.is_fetched("toy")
    assert dl.calls == 1
    # no temporary folders left behind
    assert not list((tmp_cache / "assets").glob(".*part")) and not list((tmp_cache / "downloads").glob(".*part"))


def test_second_fetch_does_no_work(tmp_cache, toy, monkeypatch):
    dl = FakeDownloader(GOOD)
    root = A.fetch("toy", downloader=dl)

    def boom(*args, **kwargs):
        raise AssertionError("must not extract again")

    monkeypatch.setattr(A, "_extract", boom)
    monkeypatch.setattr(A, "sha256_file", boom)  # not even re-hashing the download
    assert A.fetch("toy", downloader=dl) == root
    assert dl.calls == 1


def test_explicit_cache_argument(tmp_path, toy):
    other = tmp_path / "elsewhere"
    root = A.fetch("toy", cache=other, downloader=FakeDownloader(GOOD))
    assert root == other.resolve() / "assets" / "toy"
    assert A.is_fetched("toy", cache=other)


def test_truncated_download_in_cache_is_detected_and_refetched(tmp_cache, toy):
    downloads = tmp_cache / "downloads"
    downloads.mkdir()
    (downloads / toy.filename).write_bytes(GOOD[:100])  # left by an earlier, broken run
    dl = FakeDownloader(GOOD)
    root = A.fetch("toy", downloader=dl)
    assert dl.calls == 1
    assert (downloads / toy.filename).read_bytes() == GOOD
    assert (root / "package/a.txt").exists()


def test_corrupted_download_is_fetched_again_once(tmp_cache, toy):
    bad = bytearray(GOOD)
    bad[50] ^= 0xFF
    dl = FakeDownloader(bytes(bad), GOOD)
    A.fetch("toy", downloader=dl)
    assert dl.calls == 2
    assert A.is_fetched("toy")


def test_persistent_checksum_mismatch_raises_clear_error(tmp_cache, toy):
    other = make_tgz({"package/a.txt": b"something else"})
    dl = FakeDownloader(other)
    with pytest.raises(A.AssetError) as exc:
        A.fetch("toy", downloader=dl)
    msg = str(exc.value)
    assert "toy" in msg and SHA in msg and hashlib.sha256(other).hexdigest() in msg
    assert "by hand" in msg  # says how to fix it
    assert dl.calls == 2
    assert not (tmp_cache / "downloads" / toy.filename).exists()  # never trusted later
    assert not A.is_fetched("toy")


def test_interrupted_download_leaves_nothing_trusted(tmp_cache, toy):
    with pytest.raises(KeyboardInterrupt):
        A.fetch("toy", downloader=FakeDownloader(GOOD, fail_after_partial=True))
    downloads = tmp_cache / "downloads"
    assert not (downloads / toy.filename).exists()
    assert not any(downloads.iterdir())  # the temporary download folder is gone
    assert not A.is_fetched("toy")
    dl = FakeDownloader(GOOD)
    A.fetch("toy", downloader=dl)
    assert dl.calls == 1 and A.is_fetched("toy")


def test_crashed_extraction_is_redone(tmp_cache, toy, monkeypatch):
    real_extract = A._extract

    def crash(asset, archive, target):
        (target / "package").mkdir(parents=True)
        (target / "package" / "half.txt").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(A, "_extract", crash)
    with pytest.raises(KeyboardInterrupt):
        A.fetch("toy", downloader=FakeDownloader(GOOD))
    assert not A.is_fetched("toy")
    with pytest.raises(A.AssetNotFetchedError):
        A.asset_root("toy")
    # Simulate the worst case too: a process killed after the rename, before the stamp, and a
    # stale temporary folder (as left by SIGKILL, where no cleanup runs).
    dest = tmp_cache / "assets" / "toy"
    (dest / "package").mkdir(parents=True)
    (dest / "package" / "junk.txt").write_bytes(b"junk")
    stale = tmp_cache / "assets" / ".toy.abc123.part"
    stale.mkdir()
    (stale / "x").write_bytes(b"x")

    monkeypatch.setattr(A, "_extract", real_extract)
    dl = FakeDownloader(GOOD)
    root = A.fetch("toy", downloader=dl)
    assert dl.calls == 0  # the verified download was reused
    assert not (root / "package" / "junk.txt").exists() and not (root / "package" / "half.txt").exists()
    assert (root / "package/a.txt").read_bytes() == b"alpha"
    assert not stale.exists()


def test_concurrent_fetches_download_once(tmp_cache, toy):
    import threading
    import time

    calls = []

    def slow(asset, folder):
        calls.append(1)
        time.sleep(0.2)
        out = folder / asset.filename
        out.write_bytes(GOOD)
        return out

    errors = []

    def worker():
        try:
            A.fetch("toy", downloader=slow)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1 and A.is_fetched("toy")


def test_stamp_with_wrong_checksum_is_not_trusted(tmp_cache, toy):
    root = A.fetch("toy", downloader=FakeDownloader(GOOD))
    (root / ".complete").write_text("0" * 64 + "\n")
    assert not A.is_fetched("toy")
    A.fetch("toy", downloader=FakeDownloader(GOOD))
    assert A.is_fetched("toy")


@pytest.mark.parametrize(
    "members, links",
    [
        ({"package/ok.txt": b"ok", "../evil.txt": b"evil"}, None),
        ({"/tmp/xmlib-abs-evil.txt": b"evil"}, None),
        ({"package/ok.txt": b"ok"}, {"package/link": "../../../../etc/passwd"}),
    ],
    ids=["dotdot", "absolute", "symlink-out"],
)
def test_path_traversal_member_is_rejected(tmp_cache, toy, monkeypatch, members, links):
    evil = make_tgz(members, symlinks=links)
    monkeypatch.setitem(A.ASSETS, "toy", A.Asset("toy", "npm", "toy-pkg", "1.0.0", "toy-pkg-1.0.0.tgz",
                                                 hashlib.sha256(evil).hexdigest(), "MIT", "evil toy"))
    with pytest.raises(A.AssetError, match="unsafe member"):
        A.fetch("toy", downloader=FakeDownloader(evil))
    assert not (tmp_cache / "assets" / "evil.txt").exists()
    assert not (tmp_cache / "evil.txt").exists()
    assert not A.is_fetched("toy")
    assert not list((tmp_cache / "assets").glob(".*part"))


@pytest.mark.parametrize("name, binary", [("emoji-google", "npm"), ("fashion-mnist", "apt-get")])
def test_missing_client_names_asset_and_fix(tmp_cache, monkeypatch, name, binary):
    monkeypatch.setattr(A.shutil, "which", lambda cmd: None)
    with pytest.raises(A.AssetError) as exc:
        A.fetch(name)
    msg = str(exc.value)
    assert name in msg and repr(binary) in msg and "install" in msg


def test_dpkg_deb_missing_is_reported(tmp_cache, monkeypatch):
    monkeypatch.setattr(A.shutil, "which", lambda cmd: None if cmd == "dpkg-deb" else f"/usr/bin/{cmd}")
    with pytest.raises(A.AssetError, match="dpkg-deb"):
        A.fetch("openclipart-svg")


def test_unknown_asset_and_not_fetched_errors(tmp_cache):
    with pytest.raises(KeyError, match="known assets"):
        A.fetch("nope")
    with pytest.raises(A.AssetNotFetchedError, match=r"python -m xmlib\.data fetch"):
        A.asset_root("openmoji")
    assert isinstance(A.AssetNotFetchedError("x"), FileNotFoundError)


def test_fetch_all_returns_every_root(tmp_cache, toy, monkeypatch):
    other = make_tgz({"package/z.txt": b"z"})
    monkeypatch.setitem(A.ASSETS, "toy2", A.Asset("toy2", "npm", "toy2", "2.0.0", "toy2-2.0.0.tgz",
                                                  hashlib.sha256(other).hexdigest(), "MIT", "toy 2"))

    def dl(asset, folder):
        out = folder / asset.filename
        out.write_bytes(GOOD if asset.name == "toy" else other)
        return out

    roots = A.fetch_all(["toy", "toy2"], downloader=dl)
    assert roots == {"toy": tmp_cache / "assets" / "toy", "toy2": tmp_cache / "assets" / "toy2"}
    assert (roots["toy2"] / "package/z.txt").read_bytes() == b"z"


def test_fetch_all_runs_the_clients_beside_each_other_and_one_client_in_turn(monkeypatch, tmp_path):
    import threading

    specs = {"a1": "apt", "n1": "npm", "a2": "apt", "n2": "npm"}
    for name, client in specs.items():
        monkeypatch.setitem(A.ASSETS, name, A.Asset(name, client, name, "1", f"{name}.tgz", SHA, "MIT", name))
    both_lanes = threading.Barrier(2, timeout=20)  # passes only if an apt and an npm fetch run at once
    running: dict[str, int] = {"apt": 0, "npm": 0}
    overlaps = []
    lock = threading.Lock()

    def fake_fetch(name, **kwargs):
        client = specs[name]
        with lock:
            running[client] += 1
            overlaps.append(running[client])
        if name in ("a1", "n1"):
            both_lanes.wait()
        with lock:
            running[client] -= 1
        return tmp_path / name

    monkeypatch.setattr(A, "fetch", fake_fetch)
    roots = A.fetch_all(["a1", "n1", "a2", "n2"])
    assert list(roots) == ["a1", "n1", "a2", "n2"] and roots["n2"] == tmp_path / "n2"
    assert max(overlaps) == 1  # never two fetches of one client at once

    def failing(name, **kwargs):
        if name == "n1":
            raise A.AssetError("n1 is broken")
        return tmp_path / name

    monkeypatch.setattr(A, "fetch", failing)
    with pytest.raises(A.AssetError, match="n1 is broken"):
        A.fetch_all(["a1", "n1"])


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_deb_extraction_with_dpkg_deb(tmp_cache, tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: xmlib-toy\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: toy\n")
    (pkg / "usr/share/toy").mkdir(parents=True)
    (pkg / "usr/share/toy/data.txt").write_text("payload")
    deb = tmp_path / "xmlib-toy_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)], check=True, capture_output=True)
    blob = deb.read_bytes()
    monkeypatch.setitem(A.ASSETS, "debtoy", A.Asset("debtoy", "apt", "xmlib-toy", "1.0", "xmlib-toy_1.0_all.deb",
                                                    hashlib.sha256(blob).hexdigest(), "MIT", "deb toy"))

    def dl(asset, folder):
        out = folder / "xmlib-toy_1%3a1.0_all.deb"  # apt-get escapes ':' like this; the name is normalised
        out.write_bytes(blob)
        return out

    root = A.fetch("debtoy", downloader=dl)
    assert (root / "usr/share/toy/data.txt").read_text() == "payload"
    assert (tmp_cache / "downloads" / "xmlib-toy_1.0_all.deb").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name, rel, pattern, at_least", [
    ("openclipart-png", A.CLIPART_PNG_DIR, "**/*.png", 8000),
    ("openclipart-svg", A.CLIPART_SVG_DIR, "**/*.svg", 7000),
    ("tuxpaint-stamps", A.TUXPAINT_STAMPS_DIR, "**/*.txt", 900),
    ("emoji-google", A.EMOJI_IMG_DIR["emoji-google"], "*.png", 3700),
    ("emoji-twitter", A.EMOJI_IMG_DIR["emoji-twitter"], "*.png", 3700),
    ("openmoji", A.OPENMOJI_SVG_DIR, "*.svg", 4000),
])
def test_real_asset_layout(real_asset, name, rel, pattern, at_least):
    root = real_asset(name)
    assert A.sha256_file(A.cache_dir() / "downloads" / A.ASSETS[name].filename) == A.ASSETS[name].sha256
    assert sum(1 for _ in (root / rel).glob(pattern)) >= at_least
