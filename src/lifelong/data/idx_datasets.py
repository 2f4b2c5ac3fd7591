"""MNIST and Fashion-MNIST from local IDX files, checked by MD5, downloaded only when absent.

Files are looked for, in order, in ``root``, ``$LIFELONG_DATA/<name>``, ``$LIFELONG_DATA``,
``~/.cache/lifelong/<name>`` and ``/usr/share/datasets/<name>`` (Debian's
``dataset-fashion-mnist``), each as ``.gz`` or uncompressed. Checksums are taken over the
*decompressed* bytes, because Debian recompressed the archives and their compressed sums
differ from upstream's while the content is identical.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from torch import Tensor

from lifelong.data.dataset import Dataset, Split
from lifelong.data.idx import read_idx
from lifelong.errors import DataError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SYSTEM_DIR = Path("/usr/share/datasets")

# MD5 of each file's decompressed content. Tests register small fake datasets here.
CHECKSUMS: dict[str, dict[str, str]] = {
    # Measured from Debian's dataset-fashion-mnist (content identical to Zalando's release).
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    # Not measured here (no copy at hand): the uncompressed sums published next to the
    # official compressed ones (f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...) by
    # several independent projects, e.g. prabhuomkar/pytorch-cpp cmake/fetch_mnist.cmake.
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}
MIRRORS: dict[str, str] = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
DEBIAN_PACKAGES: dict[str, str] = {"fashion-mnist": "dataset-fashion-mnist"}


def fashion_mnist(
    root: str | os.PathLike[str] | None = None, download: bool = True, *, mirror: str | None = None
) -> Split:
    """Zalando's Fashion-MNIST: 60,000 train and 10,000 test 28x28 grey images of 10 clothing classes.

    Images are uint8 ``[N, 1, 28, 28]`` scaled by 1/255 when batches are drawn. ``mirror``
    (or ``$LIFELONG_MIRROR``) replaces the download base URL. Xiao et al., 2017, arXiv:1708.07747.
    """
    return _load_idx_dataset("fashion-mnist", root=root, mirror=mirror, download=download)


def mnist(
    root: str | os.PathLike[str] | None = None, download: bool = True, *, mirror: str | None = None
) -> Split:
    """LeCun's MNIST handwritten digits: 60,000 train and 10,000 test 28x28 grey images.

    Same layout, search order and options as :func:`fashion_mnist`.
    """
    return _load_idx_dataset("mnist", root=root, mirror=mirror, download=download)


def _load_idx_dataset(
    name: str, *, root: str | os.PathLike[str] | None, mirror: str | None, download: bool
) -> Split:
    """Find (or download) the four files registered under ``CHECKSUMS[name]`` and build the split."""
    checksums = CHECKSUMS[name]
    dirs = _search_dirs(name, root)
    paths = _locate(dirs)
    if paths is None:
        target = Path(root) if root is not None else Path.home() / ".cache" / "lifelong" / name
        base = mirror or os.environ.get("LIFELONG_MIRROR") or MIRRORS.get(name)
        if base is None or not download:
            _not_found(
                name, dirs, "downloading is disabled (download=False)" if base else "no mirror is known"
            )
        try:
            _download(base, target, checksums)
        except (OSError, ValueError, http.client.HTTPException, DataError) as e:
            _not_found(name, dirs, f"downloading into {target} from {base} failed: {e}")
        paths = _locate([target])  # read back and verified again below, like any local copy
        assert paths is not None
    arrays = {stem: read_idx(_load(path, checksums[stem]), str(path)) for stem, path in paths.items()}
    return Split(_dataset(name, "train", arrays), _dataset(name, "test", arrays))


def _search_dirs(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    """Directories searched, in order of precedence."""
    dirs = [Path(root)] if root is not None else []
    if env := os.environ.get("LIFELONG_DATA"):
        dirs += [Path(env) / name, Path(env)]
    return dirs + [Path.home() / ".cache" / "lifelong" / name, SYSTEM_DIR / name]


def _locate(dirs: list[Path]) -> dict[str, Path] | None:
    """The first directory holding all four files (each ``.gz`` or raw), as stem -> path."""
    for d in dirs:
        found = [next((p for p in (d / f"{stem}.gz", d / stem) if p.is_file()), None) for stem in FILES]
        if all(found):
            return {stem: p for stem, p in zip(FILES, found) if p is not None}
    return None


def _load(path: Path, md5: str) -> bytes:
    """Decompressed, verified content of a local file."""
    try:
        return _check(path.read_bytes(), path.suffix == ".gz", md5, str(path))
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e}); check its permissions or delete it") from e


def _check(raw: bytes, gzipped: bool, md5: str, source: str) -> bytes:
    """Decompress ``raw`` if needed and compare the MD5 of the content with ``md5``."""
    try:
        data = gzip.decompress(raw) if gzipped else raw
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: not a valid gzip file ({e}); delete it and load again") from e
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != md5:
        raise DataError(
            f"{source}: MD5 of the decompressed content is {actual}, expected {md5}; the file is corrupted "
            "or not the official release. Delete it (it will be downloaded again) or replace it"
        )
    return data


def _download(base: str, target: Path, checksums: Mapping[str, str]) -> None:
    """Fetch and verify all four ``.gz`` files, then move them into ``target`` by atomic renames.

    All-or-nothing: when any file fails to arrive or to verify, nothing is left behind.
    """
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    temps: dict[Path, Path] = {}
    done = False
    try:
        for stem in FILES:
            url = f"{base.rstrip('/')}/{stem}.gz"
            with urllib.request.urlopen(url, timeout=60) as response:
                raw = response.read()
            _check(raw, True, checksums[stem], url)
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=target)
            temps[target / f"{stem}.gz"] = Path(tmp)
            with os.fdopen(fd, "wb") as out:
                out.write(raw)
        for final, part in temps.items():
            os.replace(part, final)
        done = True
    finally:
        if not done:
            for part in temps.values():
                part.unlink(missing_ok=True)
            if created and target.is_dir() and not any(target.iterdir()):
                target.rmdir()


def _not_found(name: str, dirs: list[Path], reason: str) -> NoReturn:
    searched = "\n".join(f"  {d}" for d in dirs)
    package = DEBIAN_PACKAGES.get(name)
    debian = f"install Debian's {package} (apt install {package}), " if package else ""
    raise DataError(
        f"{name}: the files {', '.join(f'{s}[.gz]' for s in FILES)} were not found together in any of:\n"
        f"{searched}\nand {reason}.\nTo fix: {debian}set LIFELONG_DATA to a directory holding them "
        f"(or a '{name}' subdirectory of it), or place the four files in one of the directories above."
    )


def _dataset(name: str, split: str, arrays: dict[str, Tensor]) -> Dataset:
    part = "train" if split == "train" else "t10k"
    images, labels = arrays[f"{part}-images-idx3-ubyte"], arrays[f"{part}-labels-idx1-ubyte"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{name}: {split} images {tuple(images.shape)} and labels {tuple(labels.shape)} do not pair up; "
            "expected shapes [N, H, W] and [N]"
        )
    return Dataset(images.unsqueeze(1), labels.long(), scale=1 / 255, name=f"{name}-{split}")
