import logging

import pytest
import torch

from lifelong.data import Split, from_tensors
from lifelong.data.streams import (
    Contrast,
    DriftingStream,
    GaussianNoise,
    Identity,
    Phase,
    Rotate,
    default_phases,
    make_stream,
)
from lifelong.errors import ConfigError, DataError

NAMES = ["base", "new-classes", "rotation", "noise", "contrast", "recurring"]


@pytest.fixture(scope="module")
def stream() -> DriftingStream:
    return make_stream("digits-drift", seed=0, phase_length=120, chunk_size=50)


def test_phases_and_boundaries(stream):
    assert [p.name for p in stream.phases] == NAMES
    assert stream.boundaries == [0, 120, 240, 360, 480, 600] and len(stream) == 720
    assert stream.phase_at(0) == 0 and stream.phase_at(119) == 0 and stream.phase_at(120) == 1
    assert stream.phase_at(719) == 5
    with pytest.raises(DataError):
        stream.phase_at(720)
    assert set(stream.phase_data(0).y.tolist()) <= set(range(6))
    assert set(stream.phase_data(1).y.tolist()) == set(range(10))
    assert stream.phases[5].classes == stream.phases[0].classes


def test_chunks_arrive_in_order_and_never_span_phases(stream):
    chunks = list(stream)
    assert [c.start for c in chunks][:4] == [0, 50, 100, 120]  # 120 = 50 + 50 + 20, then the next phase
    assert sum(len(c.y) for c in chunks) == len(stream)
    for c in chunks:
        assert c.x.dtype == torch.uint8 and c.x.shape[1:] == (1, 8, 8)
        assert stream.phase_at(c.start) == c.phase == stream.phase_at(c.start + len(c.y) - 1)


def test_deterministic_under_seed(stream):
    again = make_stream("digits-drift", seed=0, phase_length=120, chunk_size=50)
    other = make_stream("digits-drift", seed=1, phase_length=120, chunk_size=50)
    for a, b in zip(stream, again):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(stream.phase_data(3).x, other.phase_data(3).x)
    assert torch.equal(stream.test_set("noise").x, again.test_set("noise").x)


def test_test_sets_follow_the_phase(stream):
    base, rotated = stream.test_set("base"), stream.test_set(2)
    assert set(base.y.tolist()) == set(range(6)) and set(rotated.y.tolist()) == set(range(10))
    assert torch.equal(base.x, stream.test_set("recurring").x)  # the recurring phase is the base one
    identity = stream.test_set("new-classes")
    assert torch.equal(identity.y, rotated.y) and not torch.equal(identity.x, rotated.x)
    assert base.scale == stream.split.test.scale and len(stream.test_set(1, size=30)) == 30
    with pytest.raises(ConfigError, match="no phase named"):
        stream.test_set("nope")
    with pytest.raises(ConfigError, match="outside"):
        stream.phase_data(6)
    assert torch.equal(stream.phase_data("rotation").x, stream.phase_data(2).x)


def test_transforms():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g) * 16
    assert torch.equal(Identity()(x, 16.0, g), x)
    assert not torch.allclose(Rotate(30.0)(x, 16.0, g), x)
    assert torch.allclose(Rotate(90.0)(x, 16.0, g), torch.rot90(x, 1, (2, 3)), atol=1e-5)  # counter-clockwise
    noisy = GaussianNoise(0.5)(x, 16.0, g)
    assert (noisy - x).std() == pytest.approx(8.0, rel=0.15)
    flat = Contrast(0.5)(x, 16.0, g)
    assert torch.allclose(flat.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    assert torch.allclose(flat.std(dim=(1, 2, 3)), 0.5 * x.std(dim=(1, 2, 3)), atol=1e-5)


def test_stream_changes_pixels_only_where_asked(stream):
    raw = stream.split.test.subset(torch.nonzero(stream.split.test.y < 10).flatten())
    assert torch.equal(stream.test_set("new-classes").x, raw.x)
    for name in ("rotation", "noise", "contrast"):
        shifted = stream.test_set(name).x
        assert shifted.dtype == torch.uint8 and int(shifted.max()) <= 16
        assert (shifted != raw.x).float().mean() > 0.2


def test_flat_square_inputs_and_validation():
    x = torch.randint(0, 256, (60, 16), dtype=torch.uint8)
    y = torch.arange(60) % 3
    split = Split(from_tensors(x, y), from_tensors(x, y))
    s = DriftingStream(
        split, [Phase("a", (0, 1), Identity(), 10), Phase("b", (2,), Rotate(45), 30)], chunk_size=7
    )
    assert s.boundaries == [0, 10] and s.phase_data(1).x.shape == (30, 16)
    assert set(s.phase_data(1).y.tolist()) == {2}  # 20 samples of class 2, drawn twice over
    with pytest.raises(ConfigError, match="absent"):
        DriftingStream(split, [Phase("a", (7,), Identity(), 10)])
    with pytest.raises(ConfigError):
        DriftingStream(split, [])
    with pytest.raises(ConfigError, match="unknown stream"):
        make_stream("mnist-drift")
    bad = Split(
        from_tensors(torch.zeros(10, 3, 4, 4), y[:10]), from_tensors(torch.zeros(10, 3, 4, 4), y[:10])
    )
    with pytest.raises(DataError, match="grey images"):
        DriftingStream(bad, default_phases([0], [0, 1], 5))


def test_fmnist_falls_back_to_digits(monkeypatch, caplog):
    import lifelong.data

    def missing(*args, **kwargs):
        raise DataError("fashion-mnist: not here")

    monkeypatch.setattr(lifelong.data, "fashion_mnist", missing)
    with caplog.at_level(logging.WARNING):
        s = make_stream("fmnist-drift", seed=0, phase_length=20)
    assert s.name == "digits-drift" and "not here" in caplog.text


@pytest.mark.fmnist
def test_fmnist_drift_stream():
    try:
        s = make_stream("fmnist-drift", seed=0, phase_length=200)
    except DataError:
        pytest.skip("Fashion-MNIST is not available")
    if s.name != "fmnist-drift":
        pytest.skip("Fashion-MNIST is not available")
    assert s.phase_data(0).x.shape == (200, 1, 28, 28) and len(s.test_set("base")) == 6000


# -- tabular streams from River's generators ---------------------------------------------------
RIVER_NAMES = ["base", "concept", "covariate", "gradual", "concept-covariate", "recurring"]


@pytest.fixture(scope="module")
def agrawal() -> DriftingStream:
    pytest.importorskip("river")
    return make_stream("agrawal-drift", seed=0, phase_length=300, chunk_size=64)


def _raw(stream: DriftingStream, x: torch.Tensor) -> torch.Tensor:
    """Undo the first-phase standardisation: Agrawal's features in their own units."""
    source = stream.phases[0].source
    return x.double() * torch.tensor(source.std) + torch.tensor(source.mean)


def _rule(fn: int, raw: torch.Tensor) -> torch.Tensor:
    """Agrawal's classification functions 0 and 2 (Agrawal et al., 1993), computed independently."""
    age, elevel = raw[:, 2].round(), raw[:, 3].round()
    if fn == 0:
        return ((age < 40) | (age >= 60)).long()
    young, middle = age < 40, (age >= 40) & (age < 60)
    return torch.where(
        young, elevel <= 1, torch.where(middle, (elevel >= 1) & (elevel <= 3), elevel >= 2)
    ).long()


def test_agrawal_drift_changes_the_rule_and_the_inputs(agrawal: DriftingStream) -> None:
    assert [p.name for p in agrawal.phases] == RIVER_NAMES
    assert agrawal.boundaries == [0, 300, 600, 900, 1200, 1500] and agrawal.n_classes == 2
    assert agrawal.input_shape == (9,)
    base, concept, covariate = (agrawal.phase_data(i) for i in range(3))
    # standardised with first-phase statistics: the first phase is centred, the shifted one is not
    assert base.x.mean(0).abs().max() < 0.25 and (base.x.std(0) - 1).abs().max() < 0.2
    assert covariate.x[:, 0].mean() > 0.3 and covariate.x[:, 2].mean() > 0.3  # salary, age
    # the labelling rule really changes at the first boundary (concept drift) ...
    assert torch.equal(base.y, _rule(0, _raw(agrawal, base.x)))
    assert torch.equal(concept.y, _rule(2, _raw(agrawal, concept.x)))
    assert (_rule(0, _raw(agrawal, concept.x)) == concept.y).float().mean() < 0.7
    # ... and not at the second (covariate shift only)
    assert torch.equal(covariate.y, _rule(2, _raw(agrawal, covariate.x)))
    assert torch.equal(agrawal.phase_data(5).y, _rule(0, _raw(agrawal, agrawal.phase_data(5).x)))


def test_river_streams_are_seeded_chunked_and_have_fresh_test_sets(agrawal: DriftingStream) -> None:
    chunks = list(agrawal)
    assert all(len(c.x) <= 64 and c.x.dtype == torch.float32 for c in chunks)
    assert sum(len(c.x) for c in chunks) == len(agrawal) == 1800
    assert {c.phase for c in chunks if 300 <= c.start < 600} == {1}
    again = make_stream("agrawal-drift", seed=0, phase_length=300, chunk_size=64)
    assert torch.equal(again.phase_data(3).x, agrawal.phase_data(3).x)
    other = make_stream("agrawal-drift", seed=1, phase_length=300)
    assert not torch.equal(other.phase_data(0).x, agrawal.phase_data(0).x)
    test = agrawal.test_set("concept")
    assert len(test) == 300 and not torch.equal(test.x, agrawal.phase_data(1).x)
    assert len(agrawal.test_set(1, size=50)) == 50
    # the simulation's bootstrap: first-phase samples not in the stream
    from dataclasses import replace

    first = DriftingStream(agrawal.split, [replace(agrawal.phases[0], length=80)], seed=7919).phase_data(0)
    assert len(first) == 80 and not torch.equal(first.x, agrawal.phase_data(0).x[:80])
    described = agrawal.describe()["phases"][4]
    assert described["source"] == {"generator": "agrawal", "function": 5, "drift_to": None, "tilt": True}


def test_sea_drift_is_registered_and_small() -> None:
    pytest.importorskip("river")
    sea = make_stream("sea-drift", seed=0, phase_length=200, chunk_size=50)
    assert sea.input_shape == (3,) and len(sea) == 1200
    raw = sea.phase_data(1).x.double() * torch.tensor(sea.phases[0].source.std) + torch.tensor(
        sea.phases[0].source.mean
    )
    assert torch.equal(sea.phase_data(1).y, (raw[:, 0] + raw[:, 1] > 7).long())  # variant 2
    with pytest.raises(ConfigError, match="unknown stream"):
        make_stream("nope-drift")


def test_a_file_stream_replays_rows_in_order_and_holds_out_a_test_set_per_segment() -> None:
    from lifelong.data.dataset import Dataset
    from lifelong.data.streams import FileStream

    n = 700
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3)  # a row's features name its index
    y = torch.cat([torch.zeros(400), torch.arange(300) % 3]).long()  # classes 1 and 2 arrive at row 400
    stream = FileStream(Dataset(x, y), bootstrap=100, segments=3, test_fraction=0.1, seed=0, chunk_size=40)
    assert stream.bootstrap_data(1000).x[:, 0].tolist() == list(range(100))  # the file's first rows
    assert [p.name for p in stream.phases] == ["100-299", "300-499", "500-699"] and not stream.drift_points
    assert (
        stream.n_classes == 3 and stream.phases[0].classes == (0,) and stream.phases[2].classes == (0, 1, 2)
    )
    streamed = torch.cat([c.x[:, 0] for c in stream])
    held = torch.cat([stream.test_set(i).x[:, 0] for i in range(3)])
    assert len(held) == 60 and len(streamed) == 540 and len(stream) == 540
    assert torch.equal(streamed, streamed.sort().values)  # file order
    assert sorted(torch.cat([streamed, held]).tolist()) == list(range(100, 700))  # each row once, either side
    assert len(stream.test_set(1, size=5)) == 5
    assert stream.file_rows is not None and stream.file_rows.tolist() == streamed.long().tolist()
    assert make_stream("sea-drift", 0, phase_length=10).file_rows is None  # no file behind it
    with pytest.raises(DataError, match="--bootstrap"):
        FileStream(Dataset(x, y), bootstrap=680, segments=6)
    # a River user's known drift rows: the segments start there, and delays are measured from them
    known = FileStream(Dataset(x, y), bootstrap=100, drift_at=[400, 250], test_fraction=0.1, seed=0)
    assert [p.name for p in known.phases] == ["100-249", "250-399", "400-699"] and known.drift_points
    for bad in ([105], [300, 305], [695]):  # in the bootstrap's reach, too close together, at the end
        with pytest.raises(
            DataError, match=r"drift rows .* at least 10 rows from either and from each other"
        ):
            FileStream(Dataset(x, y), bootstrap=100, drift_at=bad)
