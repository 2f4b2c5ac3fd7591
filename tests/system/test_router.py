"""Routing, the hot-swap holder and the micro-batcher, without a store or a server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from lifelong.checks import toy_model
from lifelong.errors import DataError, NotFoundError
from lifelong.learn.learner import Learner
from lifelong.learn.models import CNN
from lifelong.system.router import Live, Loaded, MicroBatcher, ModelHolder, bucket, route


def loaded(version: int, seed: int = 0) -> Loaded:
    return Loaded.of(version, Learner(toy_model(seed)))


def ids(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_bucket_is_deterministic_and_close_to_uniform() -> None:
    values = [bucket(r) for r in ids(4000)]
    assert values == [bucket(r) for r in ids(4000)] and all(0 <= v < 1 for v in values)
    assert abs(sum(v < 0.1 for v in values) / 4000 - 0.1) < 0.02
    assert bucket("a") != bucket("a", "shadow:")  # shadow sampling is independent of the canary's


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_canary_gets_its_share_and_the_same_id_always_goes_the_same_way(share: float) -> None:
    live = Live(loaded(1), canary=loaded(2, seed=1), canary_share=share)
    x, rids = torch.randn(500, 8), ids(500)
    first, again = route(live, x, rids), route(live, x, rids)
    assert first.variants == again.variants and first.labels == again.labels
    to_canary = sum(v == "canary" for v in first.variants)
    assert abs(to_canary / 500 - share) < 0.07
    assert {v for v, var in zip(first.versions, first.variants) if var == "canary"} <= {2}
    assert torch.allclose(first.scores.sum(1), torch.ones(500))
    assert not first.mirror.any()


def test_routed_outputs_match_each_model() -> None:
    champion, canary = loaded(1), loaded(2, seed=1)
    live = Live(champion, canary=canary, canary_share=0.5, shadow=loaded(3, seed=2), shadow_share=0.25)
    x, rids = torch.randn(200, 8), ids(200)
    routed = route(live, x, rids)
    for i in range(200):
        model = canary if routed.variants[i] == "canary" else champion
        assert routed.labels[i] == int(model.logits(x[i : i + 1]).argmax())
    assert abs(float(routed.mirror.float().mean()) - 0.25) < 0.1


def test_holder_swaps_atomically_under_concurrent_reads() -> None:
    holder = ModelHolder()
    with pytest.raises(NotFoundError, match="bootstrap"):
        _ = holder.live
    versions = [Live(loaded(v, seed=v)) for v in (1, 2)]
    holder.swap(versions[0])
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                live = holder.live
                seen.add(route(live, torch.randn(4, 8), ids(4)).versions[0])
            except BaseException as err:  # noqa: BLE001 - any failure fails the test
                errors.append(err)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(200):
        holder.swap(versions[i % 2])
        time.sleep(0.001)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and seen == {1, 2} and holder.swaps == 200  # the first load is no swap


def test_input_shape_comes_from_the_model_spec() -> None:
    assert Learner(toy_model()).input_shape == (8,)
    assert Learner(CNN(in_channels=3, image_size=8, width=4)).input_shape == (3, 8, 8)
    assert Learner(torch.nn.Linear(8, 4)).input_shape is None
    custom = Loaded.of(1, Learner(torch.nn.Linear(8, 4)))
    with pytest.raises(DataError, match="cannot take inputs"):
        custom.logits(torch.randn(2, 5))


def test_a_model_failing_on_well_shaped_inputs_is_a_server_fault_not_the_clients() -> None:
    """Was: every RuntimeError of a model's forward answered 422 'cannot take inputs of shape',
    telling a client to change inputs that were right; now only torch's shape errors do."""

    class Buggy(torch.nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("buggy forward")

    with pytest.raises(RuntimeError, match="^buggy forward$"):
        Loaded.of(1, Learner(Buggy(8, 4))).logits(torch.randn(2, 8))

    class Refusing(torch.nn.Linear):  # a model refusing an input says so with a DataError: a 422
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x < 0).any()):
                raise DataError("inputs: negative readings are sensor faults; send the raw counts")
            return super().forward(x)

    refusing = Loaded.of(1, Learner(Refusing(8, 4)))
    assert refusing.logits(torch.rand(2, 8)).shape == (2, 4)
    with pytest.raises(DataError, match="^inputs: negative readings"):
        refusing.logits(-torch.rand(2, 8))


def test_a_bad_token_id_is_refused_in_the_terms_of_a_request_not_a_python_call() -> None:
    """Was: POST /v1/predict with a fractional id to an EmbeddingBag model answered 422 '... from_tensors
    scales uint8 inputs by 1/255 unless given scale=1', advice an HTTP client cannot act on."""
    from torch import nn

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.EmbeddingBag(50, 4)
            self.classifier = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    learner = Learner(Bag())
    learner.partial_fit(torch.randint(0, 50, (20, 6)), torch.arange(20) % 2)
    model = Loaded.of(1, learner)
    x = torch.randint(0, 50, (3, 6)).float()
    assert model.logits(x).shape == (3, 2)
    x[1, 4] = 6.5
    with pytest.raises(
        DataError, match=r"^inputs: .*token ids, which are whole numbers, but sample 1 holds 6.5"
    ) as err:
        model.logits(x)
    assert "from_tensors" not in str(err.value) and "scale=" not in str(err.value)
    x[1, 4], x[2, 0] = 6, 60
    with pytest.raises(DataError, match=r"token ids 0\.\.49, but sample 2 holds 60") as err:
        model.logits(x)
    assert "num_embeddings" not in str(err.value)
    with pytest.raises(DataError, match="from_tensors .* scale=1"):  # the library's users keep their hint
        learner.predict(torch.full((1, 6), 6.5))


def test_micro_batcher_groups_concurrent_requests_and_isolates_failures() -> None:
    gate = threading.Event()

    def process(items: list[int]) -> list[int | BaseException]:
        gate.wait(5)  # hold the first batch so the others queue up behind it
        return [ValueError("odd") if i == 13 else i * 2 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_items=64)
    try:
        futures = [batcher.submit(i) for i in range(40)]
        gate.set()
        assert [f.result(5) for f in futures if f is not futures[13]] == [i * 2 for i in range(40) if i != 13]
        with pytest.raises(ValueError, match="odd"):
            futures[13].result(5)
        assert batcher.items == 40 and batcher.batches < 40
    finally:
        batcher.close()


def test_micro_batcher_survives_a_crashing_process() -> None:
    calls = []

    def process(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(process)
    try:
        with pytest.raises(RuntimeError, match="bug"):
            batcher.submit(1).result(5)
        assert batcher.submit(2).result(5) == 2
    finally:
        batcher.close()


def test_micro_batcher_answers_a_loop_once_per_batch() -> None:
    """Async submissions are settled on their loop, one call_soon_threadsafe per batch; a cancelled
    request stays cancelled and its batch-mates still get their answers."""
    gate = threading.Event()

    def process(items: list[int]) -> list[int | BaseException]:
        gate.wait(5)
        return [ValueError("odd") if i == 13 else i * 2 for i in items]

    async def main() -> tuple[list[object], int, int]:
        loop = asyncio.get_running_loop()
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        futures = [batcher.submit_async(i) for i in range(20)]
        futures[5].cancel()
        gate.set()
        done = await asyncio.gather(*futures, return_exceptions=True)
        return done, calls, batcher.batches

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_items=64)
    try:
        done, calls, batches = asyncio.run(main())
    finally:
        batcher.close()
    assert isinstance(done[5], asyncio.CancelledError)
    assert isinstance(done[13], ValueError)
    assert [d for i, d in enumerate(done) if i not in (5, 13)] == [
        i * 2 for i in range(20) if i not in (5, 13)
    ]
    assert calls == batches < 20  # one hand-back per batch, not one per request


def test_a_version_with_non_finite_weights_says_so_not_that_the_values_are_too_large() -> None:
    """A diverged champion's every answer was a 422 telling the client to send smaller values."""
    from lifelong.errors import CheckpointError

    learner = Learner(toy_model())
    learner.partial_fit(torch.randn(8, 8), torch.arange(8) % 4)
    loaded = Loaded.of(3, learner)
    assert loaded.logits(torch.randn(2, 8)).isfinite().all()
    with pytest.raises(DataError, match="values too large for version 3"):
        loaded.logits(torch.full((2, 8), float("inf")))  # upstream, finite values this large overflow
    with torch.no_grad():
        next(learner.model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="version 3 cannot answer: its weights are not finite"):
        loaded.logits(torch.randn(2, 8))
