"""Orthonormal bases and layer representations for gradient-projection methods (OGD, GPM)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.errors import ConfigError

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner

PROJECTABLE = (nn.Linear, nn.Conv2d)


def extend_rows(basis: Tensor | None, vectors: Tensor, rtol: float = 1e-5) -> Tensor:
    """Orthonormal rows ``basis`` [K, P] extended by the part of ``vectors`` [m, P] outside their span.

    The vectors are projected off the basis twice (one pass leaves round-off of the order of
    the basis's size; two are enough), then an SVD gives an orthonormal basis of what is left;
    directions with singular value below ``rtol`` times the largest vector norm are dropped.
    """
    scale = float(vectors.norm(dim=1).max()) if len(vectors) else 0.0
    if basis is None:
        basis = vectors.new_zeros((0, vectors.shape[1]))
    if scale == 0.0:
        return basis
    v = vectors
    for _ in range(2):
        v = v - (v @ basis.T) @ basis
    _, s, vh = torch.linalg.svd(v, full_matrices=False)  # vh [min(m, P), P], orthonormal rows
    return torch.cat([basis, vh[s > rtol * scale]])


def layers(model: nn.Module) -> Iterator[tuple[str, nn.Linear | nn.Conv2d]]:
    """The model's Linear and Conv2d layers, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, PROJECTABLE):
            yield name, module


def check_projectable(model: nn.Module, method: str) -> None:
    """Refuse models with trainable weights outside Linear / Conv2d (groups=1, zero padding)."""
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"):
            raise ConfigError(
                f"{method}: conv layer {name!r} has groups > 1 or non-zero padding: unsupported"
            )
        if not isinstance(module, PROJECTABLE):
            raise ConfigError(
                f"{method} projects Linear and Conv2d gradients only, but {name!r} ({type(module).__name__}) "
                "has trainable parameters; freeze it (requires_grad_(False)) or use another strategy"
            )


def layer_inputs(module: nn.Module, x: Tensor) -> Tensor:
    """Rows the layer's weight multiplies: [N, in (+1 for the bias)]; conv inputs become patches."""
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):  # "same" / "valid": unfold takes the numbers only
            raise ConfigError(f"conv layer padding={module.padding!r}: give the padding as numbers")
        # [B, C*k*k, L]: channel-major like weight.reshape(out, -1)
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    else:
        rows = x.reshape(-1, x.shape[-1])
    if module.bias is not None:  # the bias is a weight on a constant input 1
        rows = torch.cat([rows, rows.new_ones((len(rows), 1))], 1)
    return rows


@torch.no_grad()
def input_grams(model: nn.Module, x_chunks: list[Tensor]) -> dict[str, Tensor]:
    """``R^T R`` (float64, [d, d]) of every projectable layer's input rows ``R`` over the chunks."""
    grams: dict[str, Tensor] = {}
    handles = []
    for name, module in layers(model):

        def hook(m: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
            rows = layer_inputs(m, args[0]).double()
            grams[name] = grams[name] + rows.T @ rows if name in grams else rows.T @ rows

        handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for x in x_chunks:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return grams


def grow_basis(basis: Tensor | None, gram: Tensor, threshold: float) -> Tensor:
    """GPM's update: add the fewest new directions so the basis holds ``threshold`` of the energy.

    ``basis`` [d, k] has orthonormal columns; energy is measured on the Gram matrix ``R^T R``.
    Returns the grown basis (float32). The first basis (``basis`` None) takes, as the authors' code
    does (``r = np.sum(np.cumsum(sval_ratio) < threshold)``), the directions whose cumulative energy
    stays below the threshold, one fewer than the fewest reaching it, which later updates take.
    """
    d = gram.shape[0]
    m = gram.new_zeros((d, 0)) if basis is None else basis.to(gram)
    total = float(gram.trace())
    if total <= 0:
        return m.float()
    captured = float((m.T @ gram @ m).trace())
    residual = gram - m @ (m.T @ gram)
    residual = residual - (residual @ m) @ m.T  # (I - MM^T) G (I - MM^T)
    values, vectors = torch.linalg.eigh((residual + residual.T) / 2)  # ascending
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)
    need = threshold * total - captured
    if need <= 0:
        return m.float()
    k = int((values.cumsum(0) < need).sum()) + (0 if basis is None else 1)
    k = min(k, int((values > 1e-10 * total).sum()))  # never directions the basis already spans
    return torch.cat([m, vectors[:, :k]], 1).float()


def warn_unless_plain_sgd(learner: Learner, who: str) -> None:
    """Projection methods change each step's gradient; momentum and Adam then carry earlier, unprojected
    steps along, so old experiences' outputs drift (GPM: BWT -0.077 with momentum 0.9, 0 with none)."""
    if learner.optimizer_name != "sgd" or learner.momentum:
        how = f"momentum {learner.momentum}" if learner.optimizer_name == "sgd" else learner.optimizer_name
        warnings.warn(
            f"{who} projects each step's gradient, and {how} carries earlier unprojected steps along, so old "
            "experiences' outputs drift; use optimizer='sgd' with momentum=0, as the method's paper does",
            UserWarning,
            stacklevel=3,
        )
