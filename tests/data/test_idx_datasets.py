"""Loader tests on a tiny fake dataset served over real loopback HTTP; one test reads real Fashion-MNIST."""

import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lifelong.data import fashion_mnist, idx_datasets, mnist
from lifelong.data.dataset import Split
from lifelong.data.idx import read_idx, write_idx
from lifelong.data.idx_datasets import CHECKSUMS, FILES, _load_idx_dataset, _locate, _search_dirs
from lifelong.errors import DataError

NAME = "tiny-mnist"


@pytest.fixture
def tiny() -> dict[str, bytes]:
    """Uncompressed IDX bytes of a 20 train / 10 test 28x28 dataset."""
    g = torch.Generator().manual_seed(0)
    images = {n: torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g) for n in (20, 10)}
    return {
        "train-images-idx3-ubyte": write_idx(images[20]),
        "train-labels-idx1-ubyte": write_idx(torch.arange(20, dtype=torch.uint8) % 10),
        "t10k-images-idx3-ubyte": write_idx(images[10]),
        "t10k-labels-idx1-ubyte": write_idx(torch.arange(10, dtype=torch.uint8)),
    }


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: dict[str, bytes]) -> None:
    """A fresh HOME, no LIFELONG_* variables, and the tiny dataset's checksums registered."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIFELONG_DATA", raising=False)
    monkeypatch.delenv("LIFELONG_MIRROR", raising=False)
    monkeypatch.setitem(CHECKSUMS, NAME, {stem: hashlib.md5(raw).hexdigest() for stem, raw in tiny.items()})


def write_files(directory: Path, files: dict[str, bytes], gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, raw in files.items():
        (directory / (f"{stem}.gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)
    return directory


def serve(directory: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


@pytest.fixture
def mirror(tmp_path: Path, tiny: dict[str, bytes]) -> Iterator[str]:
    url, server = serve(write_files(tmp_path / "served", tiny))
    yield url
    server.shutdown()
    server.server_close()


def cache(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".cache" / "lifelong" / NAME


def load(root: Path | None = None, mirror: str | None = None, download: bool = True) -> Split:
    return _load_idx_dataset(NAME, root=root, mirror=mirror, download=download)


def test_download_lands_in_the_cache_and_loads(tmp_path: Path, mirror: str, tiny: dict[str, bytes]) -> None:
    train, test = load(mirror=mirror)
    assert sorted(p.name for p in cache(tmp_path).iterdir()) == sorted(f"{s}.gz" for s in FILES)
    assert train.x.shape == (20, 1, 28, 28) and test.x.shape == (10, 1, 28, 28)
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64 and train.scale == 1 / 255
    assert train.y.tolist() == [i % 10 for i in range(20)]
    assert (train.name, test.name) == (f"{NAME}-train", f"{NAME}-test")
    assert torch.equal(train.x[:, 0], read_idx(tiny["train-images-idx3-ubyte"]))


def test_second_load_uses_the_cache_without_network(tmp_path: Path, mirror: str) -> None:
    load(mirror=mirror)
    train, _ = load(mirror="http://127.0.0.1:9/", download=False)
    assert len(train) == 20


def test_mirror_from_environment_and_download_into_root(
    tmp_path: Path, mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFELONG_MIRROR", mirror)
    train, _ = load(root=tmp_path / "mine")
    assert len(train) == 20
    assert len(list((tmp_path / "mine").glob("*.gz"))) == 4
    assert not cache(tmp_path).exists()


def test_corrupted_download_names_the_file_and_leaves_nothing(tmp_path: Path, tiny: dict[str, bytes]) -> None:
    served = write_files(tmp_path / "served", tiny)
    labels = bytearray(tiny["t10k-labels-idx1-ubyte"])
    labels[-1] ^= 1
    write_files(served, {"t10k-labels-idx1-ubyte": bytes(labels)})
    url, server = serve(served)
    try:
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*MD5") as info:
            load(mirror=url)
    finally:
        server.shutdown()
        server.server_close()
    assert str(cache(tmp_path)) in str(info.value)
    assert not cache(tmp_path).exists() or not any(cache(tmp_path).iterdir())


def test_missing_file_on_the_mirror_is_an_http_error(tmp_path: Path, tiny: dict[str, bytes]) -> None:
    url, server = serve(write_files(tmp_path / "served", dict(list(tiny.items())[:3])))
    try:
        with pytest.raises(DataError, match="404"):
            load(mirror=url)
    finally:
        server.shutdown()
        server.server_close()
    assert not cache(tmp_path).exists()


def test_offline_lists_every_directory_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, server = serve(tmp_path)
    server.shutdown()
    server.server_close()  # the port now refuses connections
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        load(root=tmp_path / "root", mirror=url)
    message = str(info.value)
    home_cache = tmp_path / "home" / ".cache" / "lifelong" / NAME
    for d in [tmp_path / "root", tmp_path / "data" / NAME, tmp_path / "data", home_cache]:
        assert f"  {d}\n" in message
    assert f"/usr/share/datasets/{NAME}\n" in message
    assert "failed" in message and "LIFELONG_DATA" in message


def test_download_false_does_not_touch_the_network(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"download=False"):
        load(mirror="http://127.0.0.1:9/", download=False)


def test_debian_package_is_suggested_for_fashion_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idx_datasets, "SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(DataError, match="apt install dataset-fashion-mnist"):
        fashion_mnist(download=False)
    with pytest.raises(DataError, match="mnist: the files"):
        mnist(download=False)


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFELONG_DATA", "/data")
    home = tmp_path / "home"
    assert _search_dirs(NAME, "/r") == [
        Path("/r"),
        Path("/data") / NAME,
        Path("/data"),
        home / ".cache" / "lifelong" / NAME,
        Path("/usr/share/datasets") / NAME,
    ]


def test_root_is_searched_before_lifelong_data(
    tmp_path: Path, tiny: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFELONG_DATA", str(write_files(tmp_path / "data" / NAME, tiny)))
    bad = dict(tiny, **{"train-images-idx3-ubyte": tiny["train-images-idx3-ubyte"][:-1] + b"\x01"})
    root = write_files(tmp_path / "root", bad)
    with pytest.raises(DataError, match=f"{root}/train-images-idx3-ubyte.gz: MD5"):
        load(root=root)
    assert len(load()[0]) == 20  # without root, LIFELONG_DATA's good copy is used


def test_lifelong_data_is_searched_before_the_cache(
    tmp_path: Path, tiny: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache(tmp_path).mkdir(parents=True)
    for stem in FILES:
        (cache(tmp_path) / f"{stem}.gz").write_bytes(b"not gzip")
    monkeypatch.setenv("LIFELONG_DATA", str(write_files(tmp_path / "data", tiny, gz=False)))
    assert len(load()[0]) == 20
    monkeypatch.delenv("LIFELONG_DATA")
    with pytest.raises(DataError, match="not a valid gzip"):
        load()


def test_mismatched_images_and_labels_are_rejected(
    tmp_path: Path, tiny: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = dict(tiny, **{"t10k-labels-idx1-ubyte": write_idx(torch.zeros(9, dtype=torch.uint8))})
    monkeypatch.setitem(CHECKSUMS, NAME, {stem: hashlib.md5(raw).hexdigest() for stem, raw in files.items()})
    with pytest.raises(DataError, match="test images .* do not pair up"):
        load(root=write_files(tmp_path / "root", files))


@pytest.mark.fmnist
def test_real_fashion_mnist() -> None:
    if _locate(_search_dirs("fashion-mnist", None)) is None:
        pytest.skip(
            "Fashion-MNIST files not found; install Debian's dataset-fashion-mnist or set LIFELONG_DATA"
        )
    train, test = fashion_mnist(download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    assert train.classes == test.classes == list(range(10))
    assert int(train.y.min()) == 0 and int(train.y.max()) == 9
