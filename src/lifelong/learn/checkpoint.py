"""Checkpoint files: tensors in safetensors, everything else in a JSON manifest.

Nothing is ever unpickled: nested state (dicts with int keys, tuples, sets, tensors) is
encoded to JSON with tensors replaced by references into one safetensors file whose SHA-256
the manifest records, so a truncated or tampered tensor file is refused before it is read.

Saving over a checkpoint is atomic: the tensors go to a new file named by their hash, the manifest
that names it replaces the old one in one rename, and only then is the old tensor file deleted, so a
process killed at any moment leaves the old checkpoint or the new one (the tensors were rewritten in
place, and a kill between that and the manifest's rename left neither loadable).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lifelong.errors import CheckpointError

FORMAT = "lifelong-checkpoint"
VERSION = 1
TENSORS = "tensors.safetensors"  # the name of checkpoints written before tensor files were named by hash
_TENSOR_FILE = re.compile(r"tensors(-[0-9a-f]{16})?\.safetensors")
MANIFEST = "manifest.json"


class Encoder:
    """Turns nested state into JSON-able data, collecting tensors under unique keys."""

    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}

    def __call__(self, obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            key = path
            self.tensors[key] = obj.detach().cpu().contiguous().clone()
            return {"__tensor__": key}
        if isinstance(obj, torch.Generator):
            return {"__generator__": self(obj.get_state(), path)}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self(v, f"{path}/{k}") for k, v in obj.items()}
            return {
                "__items__": [
                    [self(k, f"{path}/k{i}"), self(v, f"{path}/{i}")] for i, (k, v) in enumerate(obj.items())
                ]
            }
        if isinstance(obj, tuple):
            return {"__tuple__": [self(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, (set, frozenset)):  # in a stable order: mixed types by their repr
            try:
                items = sorted(obj)
            except TypeError:
                items = sorted(obj, key=repr)
            return {"__set__": [self(v, f"{path}/{i}") for i, v in enumerate(items)]}
        if isinstance(obj, list):
            return [self(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"__float__": repr(obj)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise CheckpointError(
            f"cannot save state of type {type(obj).__name__} at {path}; use tensors or plain data"
        )


def decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        try:
            return tensors[obj["__tensor__"]]
        except KeyError as e:
            raise CheckpointError(f"checkpoint is missing tensor {obj['__tensor__']!r}") from e
    if "__generator__" in obj:
        g = torch.Generator()
        g.set_state(decode(obj["__generator__"], tensors))
        return g
    if "__items__" in obj:
        return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__set__" in obj:
        return {decode(v, tensors) for v in obj["__set__"]}
    if "__float__" in obj:
        return float(obj["__float__"])
    return {k: decode(v, tensors) for k, v in obj.items()}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(directory: str | os.PathLike[str], manifest: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``state`` (nested, with tensors) and ``manifest`` into ``directory`` (made if missing)."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise CheckpointError(
            f"cannot save a checkpoint to {path}: it is a file; a checkpoint is a directory (give a new "
            "path, or an existing checkpoint's directory to overwrite it)"
        )
    enc = Encoder()
    encoded = enc(state, "state")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f"tensors.{os.getpid()}.tmp"
        save_file(enc.tensors, str(tmp))
        fsync(tmp)
        digest = sha256(tmp)
        name = f"tensors-{digest[:16]}.safetensors"
        os.replace(tmp, path / name)  # a new name: the old manifest's tensors stay as they were
        doc = {
            "format": FORMAT,
            "format_version": VERSION,
            **manifest,
            "state": encoded,
            "files": {name: digest},
        }
        tmp = path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        fsync(tmp)
        os.replace(tmp, path / MANIFEST)  # the manifest appears last: its presence means complete
        fsync(path)  # the renames themselves, before the old tensors go
        for old in path.iterdir():  # the tensors the replaced manifest named, and a killed save's leftovers
            if old.name != name and (_TENSOR_FILE.fullmatch(old.name) or old.name.endswith(".tmp")):
                old.unlink(missing_ok=True)
    except OSError as e:  # no permission, a file where a parent directory should be, a full disk
        raise CheckpointError(
            f"cannot save a checkpoint to {path}: {e.strerror or e}; choose a directory you can write"
        ) from e
    return path


def fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to disk, so that a rename never outruns its content."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify and read a checkpoint: returns ``(manifest, state)``."""
    path = Path(directory)
    where = f"checkpoint {path}"
    if not (path / MANIFEST).is_file():
        raise CheckpointError(f"{where}: no {MANIFEST}; is this a directory written by Learner.save()?")
    try:
        doc = json.loads((path / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(
            f"{where}: {MANIFEST} is not valid JSON (truncated, edited or nested too deeply): {e}"
        ) from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{where}: {MANIFEST} must be a JSON object")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a lifelong checkpoint (format {doc.get('format')!r})")
    if doc.get("format_version") != VERSION:
        raise CheckpointError(
            f"{where}: format version {doc.get('format_version')} is not supported (need {VERSION})"
        )
    files = doc.get("files")
    named = (
        [n for n in files if isinstance(n, str) and _TENSOR_FILE.fullmatch(n)]
        if isinstance(files, dict)
        else []
    )
    if not isinstance(files, dict) or len(named) != 1:  # a plain name here: never a path elsewhere
        raise CheckpointError(f"{where}: the manifest names no tensor file (files: {str(files)[:200]})")
    (name,) = named
    tensor_file = path / name
    if not tensor_file.is_file():
        raise CheckpointError(f"{where}: {name} is missing")
    if sha256(tensor_file) != files[name]:
        raise CheckpointError(f"{where}: {name} does not match its recorded SHA-256 (truncated or tampered)")
    try:
        tensors = load_file(str(tensor_file))
    except Exception as e:  # safetensors raises its own error types on malformed files
        raise CheckpointError(f"{where}: cannot read {name}: {e}") from e
    try:
        return doc, decode(doc["state"], tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: the manifest's state is malformed: {type(e).__name__}") from e


def per_parameter_to(state: Any, names: set[str], device: torch.device) -> Any:
    """``state`` with its per-parameter tensors on ``device``; everything else as it is.

    Checkpoints load on the CPU. State a strategy keeps per parameter, buffer or layer name
    (EWC's anchors and importances, a teacher's weights, GPM's bases) meets the parameters in
    every step, so it belongs with them on the training device; memories of samples stay in
    host memory (batches are copied to the device as they are drawn). ``state`` may be a dict,
    or a list of dicts (one per experience).
    """
    if isinstance(state, list):
        return [per_parameter_to(s, names, device) for s in state]
    if (
        isinstance(state, dict)
        and state
        and all(isinstance(k, str) and k in names and isinstance(v, Tensor) for k, v in state.items())
    ):
        return {k: v.to(device) for k, v in state.items()}
    return state


def match_dtypes(model: nn.Module, saved: dict[str, Any]) -> None:
    """Give each floating parameter and buffer of ``model`` the dtype of its namesake in ``saved`` (a
    state dict). A model rebuilt from its spec is float32 and ``load_state_dict`` casts into it: a
    learner trained as ``model.to(torch.bfloat16)`` (or ``.double()``) would come back float32,
    predicting and training in another precision."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        value = saved.get(name)
        if (
            isinstance(value, Tensor)
            and value.is_floating_point()
            and tensor.is_floating_point()
            and value.dtype != tensor.dtype
        ):
            tensor.data = tensor.data.to(value.dtype)


def fit_progress(saved: Any) -> dict[str, Any] | None:
    """A fit's saved progress (rows of the accuracy matrix so far, flips, untrained accuracy, the cost
    counters at its start, the stream it fitted), or None; a malformed one is a CheckpointError."""
    if saved is None:
        return None
    ok = (
        isinstance(saved, dict)
        and isinstance(saved.get("stream"), list)
        and isinstance(saved.get("rows"), list)
        and len(saved["rows"]) > 0
        and all(isinstance(r, list) for r in saved["rows"])
        and isinstance(saved.get("flips"), list)
        and isinstance(saved.get("untrained"), list)
        and isinstance(saved.get("start"), list)
        and len(saved["start"]) == 4
    )
    if not ok:
        raise CheckpointError(
            "bookkeeping: fit_progress is malformed: it was edited by hand; use the checkpoint as saved"
        )
    return dict(saved)


#: bookkeeping fields written since format 1 began: absent from an older checkpoint, which loads without
#: them (a champion saved before 2026-12-03 has no feature_names, and upgrading left nothing to serve)
ADDED_SINCE_FORMAT_1 = frozenset({"feature_names", "boundary_seconds", "open_experience", "fit_progress"})


def check_bookkeeping(book: Any, n_strategies: int, n_states: int) -> None:
    """A CheckpointError naming the first bookkeeping field of a manifest edited by hand that the
    learner could not run with (it loaded, then failed at the next step after the optimizer moved)."""

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def seconds(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    def labels(v: Any) -> bool:
        return isinstance(v, list) and all(count(c) for c in v)

    if n_states != n_strategies:
        raise CheckpointError(
            f"the manifest lists {n_strategies} strategies and the state holds {n_states}: it was edited "
            "by hand; use the checkpoint as saved"
        )
    if not isinstance(book, dict):
        raise CheckpointError("bookkeeping is not an object")
    checks = {
        "experience_count": count, "step": count, "epochs_trained": count, "samples_trained": count,
        "base_parameters": count, "train_seconds": seconds, "classes_seen": labels,
        "task_classes": lambda v: isinstance(v, dict) and all(
            (isinstance(t, int) or (isinstance(t, str) and t.lstrip("-").isdigit())) and labels(c)
            for t, c in v.items()),
        "input_shape": lambda v: v is None or (isinstance(v, list) and all(count(n) and n > 0 for n in v)),
        "feature_names": lambda v: v is None or (isinstance(v, list) and all(isinstance(n, str) for n in v)),
    }  # fmt: skip
    for field, ok in checks.items():
        if field not in book and field in ADDED_SINCE_FORMAT_1:  # an older checkpoint: its default
            continue
        if field not in book or not ok(book[field]):
            raise CheckpointError(
                f"bookkeeping field {field!r} is missing or not of its kind: {book.get(field)!r}"[:300]
            )
    shape, names = book["input_shape"], book.get("feature_names")
    if shape is not None and names is not None and len(names) != math.prod(shape):
        raise CheckpointError(f"bookkeeping names {len(names)} features for samples of shape {shape}")
