"""Which model answers a request: the champion, a canary share of traffic, a mirrored shadow.

The live set of models is one frozen :class:`Live` object held by a :class:`ModelHolder`. A swap
builds a new ``Live`` (loading happens beforehand, off the request path) and replaces the
reference with one assignment, which is atomic in Python: a request reads the reference once and
keeps a consistent snapshot, so no request fails or waits while models change.

:class:`MicroBatcher` groups concurrent requests into one forward pass and one store transaction;
with SQLite's fsync per commit that is what lets throughput grow with the number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch
from torch import Tensor

from lifelong.errors import CheckpointError, DataError, NotFoundError
from lifelong.learn.learner import Learner
from lifelong.learn.models import shape_error
from lifelong.learn.tokens import check_ids, input_embedding
from lifelong.system.contract import Contract

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Loaded:
    """A loaded, read-only version: the learner in eval mode and its deployment contract."""

    version: int
    learner: Learner
    contract: Contract | None  # None only for artifacts of custom models made before contracts

    @classmethod
    def of(cls, version: int, learner: Learner, contract: Contract | None = None) -> Loaded:
        # eval() once, here: predict_logits then never toggles modes, so concurrent calls are safe.
        learner.model.eval()
        if contract is None:  # an artifact from before contracts: derive what the model tells
            shape, n = learner.input_shape, learner.n_outputs
            contract = Contract(tuple(range(n)), shape) if shape is not None and n else None
        return cls(version, learner, contract)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return None if self.contract is None else self.contract.input_shape

    def logits(self, x: Tensor) -> Tensor:
        """Logits [B, n_classes] for raw x [B, *input_shape] (standardised here when the contract says so).

        A model that takes token ids gets them checked here, in a client's terms (which sample holds
        a fractional or unknown id), not in the library's (whose advice is a Python call)."""
        embedding = input_embedding(self.learner.model)
        if embedding is not None:
            check_ids(embedding, x, "inputs", for_client=True)
        c = self.contract
        if c is not None and c.mean is not None and c.std is not None:
            mean = torch.tensor(c.mean, dtype=x.dtype)
            std = torch.tensor(c.std, dtype=x.dtype)
            x = ((x.reshape(len(x), -1) - mean) / std).reshape(x.shape)
        try:
            out = self.learner.predict_logits(x).float().cpu()  # back from the device, if any
        except Exception as err:
            if shape_error(err) is None:  # the model's own fault, not the client's: a 500, logged
                raise
            raise DataError(  # a shape mismatch inside a custom model without a contract's shape
                f"version {self.version} cannot take inputs of shape {tuple(x.shape[1:])}"
            ) from err
        # finite inputs so large that standardising or the model overflows
        if not bool(torch.isfinite(out).all()):
            if not all(bool(torch.isfinite(p).all()) for p in self.learner.model.parameters()):
                raise CheckpointError(  # not the client's values: a diverged training (409)
                    f"version {self.version} cannot answer: its weights are not finite (its training diverged); "
                    "roll back or promote another version"
                )
            bad = (~torch.isfinite(out).all(1)).nonzero().flatten().tolist()
            raise DataError(
                f"sample{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad[:5]))}: values too large for "
                f"version {self.version} (its outputs overflow to infinity or NaN); send features in the "
                "range the model was trained on"
            )
        return out


@dataclass(frozen=True)
class Live:
    """The models serving right now. Immutable: change it by building a new one and swapping."""

    champion: Loaded
    canary: Loaded | None = None
    canary_share: float = 0.0
    shadow: Loaded | None = None
    shadow_share: float = 0.0

    def versions(self) -> dict[str, tuple[int, float | None]]:
        out: dict[str, tuple[int, float | None]] = {"champion": (self.champion.version, None)}
        if self.canary is not None:
            out["canary"] = (self.canary.version, self.canary_share)
        if self.shadow is not None:
            out["shadow"] = (self.shadow.version, self.shadow_share)
        return out


class ModelHolder:
    """The injected hot-swap point: ``live`` is read once per batch, ``swap`` is one assignment."""

    def __init__(self, live: Live | None = None) -> None:
        self._live = live
        self.swaps = 0

    @property
    def live(self) -> Live:
        live = self._live  # one read: the caller keeps this snapshot for the whole batch
        if live is None:
            raise NotFoundError(
                "no champion is deployed; bootstrap one (lifelong up --bootstrap, or System.bootstrap(learner) "
                "in Python) or promote a version"
            )
        return live

    @property
    def ready(self) -> bool:
        return self._live is not None

    def swap(self, live: Live) -> Live | None:
        """Replace the live set; never blocks and never fails. Returns the previous one."""
        old, self._live = self._live, live
        self.swaps += old is not None  # the first load is no swap (a fresh replica read 1)
        return old


def bucket(request_id: str, salt: str = "") -> float:
    """A stable number in [0, 1) for ``request_id``: the same id is always routed the same way."""
    digest = hashlib.blake2b(f"{salt}{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


@dataclass
class Routed:
    """Outputs of one batch: per sample the variant and version that answered, label and scores."""

    variants: list[str]
    versions: list[int]
    labels: list[int]
    scores: Tensor  # [B, n_classes] softmax
    mirror: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # [B] to shadow


def route(live: Live, x: Tensor, request_ids: Sequence[str]) -> Routed:
    """Answer x [B, ...] with the champion, or the canary for ids hashed under its share."""
    n = len(request_ids)
    to_canary = torch.tensor(
        [live.canary is not None and bucket(r) < live.canary_share for r in request_ids], dtype=torch.bool
    )
    groups = [(live.champion, ~to_canary, "champion")]
    if live.canary is not None and bool(to_canary.any()):
        groups.append((live.canary, to_canary, "canary"))
    scores: Tensor | None = None
    variants, versions = ["champion"] * n, [live.champion.version] * n
    for model, mask, variant in groups:
        if not bool(mask.any()):
            continue
        probs = model.logits(x[mask]).softmax(1)
        if scores is None:
            scores = torch.zeros(n, probs.shape[1])
        if probs.shape[1] != scores.shape[1]:  # canary with another head size: pad the narrower one
            width = max(probs.shape[1], scores.shape[1])
            scores = torch.nn.functional.pad(scores, (0, width - scores.shape[1]))
            probs = torch.nn.functional.pad(probs, (0, width - probs.shape[1]))
        scores[mask] = probs
        if variant == "champion":  # the lists start as the champion's
            continue
        for i in mask.nonzero().flatten().tolist():
            variants[i], versions[i] = variant, model.version
    assert scores is not None or n == 0
    scores = scores if scores is not None else torch.zeros(0, 0)
    mirror = torch.tensor(
        [live.shadow is not None and bucket(r, "shadow:") < live.shadow_share for r in request_ids],
        dtype=torch.bool,
    )
    return Routed(variants, versions, scores.argmax(1).tolist(), scores, mirror)


@dataclass
class _Job(Generic[T, R]):
    item: T
    future: Future[R] | asyncio.Future[R]
    loop: asyncio.AbstractEventLoop | None = None  # set for asyncio futures (answered on that loop)


class MicroBatcher(Generic[T, R]):
    """Run ``process(items) -> results`` on one worker thread over whatever requests are waiting.

    While a batch is processed new requests queue up and form the next batch, so batching adds
    no wait under light load and amortizes the forward pass and the store's fsync under heavy load.
    ``process`` returns one result or exception per item; an exception fails only that request.
    Requests submitted from an event loop (:meth:`submit_async`) get their results back in one
    ``call_soon_threadsafe`` per batch, not one wake-up of the loop per request.
    """

    def __init__(
        self,
        process: Callable[[list[T]], list[R | BaseException]],
        *,
        max_items: int = 64,
        max_wait_s: float = 0.0,
        name: str = "lifelong-batcher",
    ) -> None:
        self.process, self.max_items, self.max_wait_s = process, max_items, max_wait_s
        self._queue: queue.SimpleQueue[_Job[T, R] | None] = queue.SimpleQueue()
        self.batches = 0
        self.items = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put(_Job(item, future))
        return future

    def submit_async(self, item: T) -> asyncio.Future[R]:
        """Like :meth:`submit`, from a coroutine: the returned future belongs to the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put(_Job(item, future, loop))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = [first], False
            deadline = time.monotonic() + self.max_wait_s
            while len(jobs) < self.max_items:
                try:
                    timeout = deadline - time.monotonic()
                    job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._run_batch(jobs)
            if stop:
                return

    def _run_batch(self, jobs: list[_Job[T, R]]) -> None:
        self.batches += 1
        self.items += len(jobs)
        try:
            results: Sequence[R | BaseException] = self.process([j.item for j in jobs])
        except BaseException as err:  # a bug in process: fail the batch, keep serving
            results = [err] * len(jobs)
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | BaseException]]] = {}
        for job, result in zip(jobs, results):
            if job.loop is not None:
                on_loops.setdefault(job.loop, []).append((job.future, result))  # type: ignore[arg-type]
            elif isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        for loop, answers in on_loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_deliver, answers)


def _deliver(answers: list[tuple[asyncio.Future[R], R | BaseException]]) -> None:
    """On the event loop: settle a batch's futures (those whose request was cancelled stay so)."""
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
