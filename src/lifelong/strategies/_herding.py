"""Herding selection of exemplars (Welling, 2009), as used by iCaRL (Rebuffi et al., 2017).

Shared by the herding buffer and iCaRL: pick exemplars one at a time so that the running
mean of those picked stays as close as possible to the class mean.
"""

from __future__ import annotations

import torch
from torch import Tensor


def herding(features: Tensor, m: int, *, normalize: bool = False) -> Tensor:
    """Indices of ``m`` rows of ``features`` chosen greedily by herding, in the order chosen.

    At step ``k`` the row ``i`` minimising ``|| mu - (sum of the k-1 chosen + f_i) / k ||`` is
    added, where ``mu`` is the mean of all rows (iCaRL, Algorithm 4). Rows are not chosen twice,
    so ``m >= len(features)`` returns every index. The order is a priority: the first ``k``
    indices are the best ``k`` exemplars, so a shrinking memory keeps a prefix.

    Parameters
    ----------
    features : [N, D] features of one class.
    m : how many exemplars to choose.
    normalize : L2-normalise each row first (iCaRL does, on the penultimate features).

    Returns
    -------
    LongTensor [min(m, N)] of row indices.

    Examples
    --------
    >>> f = torch.tensor([[0.0], [1.0], [2.0], [10.0]])  # mean 3.25
    >>> herding(f, 2).tolist()  # 2.0 is closest to 3.25; then (2 + 1) / 2 = 1.5 beats (2 + 10) / 2 = 6
    [2, 1]
    """
    f = features.detach().flatten(1).float()
    if normalize:
        f = torch.nn.functional.normalize(f, dim=1)
    n = len(f)
    m = max(0, min(m, n))
    # with g = f - mu and T the sum of the chosen g: k^2 ||mu - (S + f_i) / k||^2 = ||T + g_i||^2
    # = ||T||^2 + ||g_i||^2 + 2 T.g_i. T stays small (that is herding's aim), so one fresh
    # matrix-vector product per pick is accurate in float32, with no [N, D] temporary per pick.
    g = f - f.mean(0)  # [N, D]
    sq = (g * g).sum(1)  # [N]
    total = torch.zeros(g.shape[1], dtype=g.dtype, device=g.device)  # T, [D]
    taken = torch.zeros(n, dtype=torch.bool, device=f.device)
    chosen = torch.empty(m, dtype=torch.long, device=f.device)
    for k in range(m):
        i = torch.addmv(sq, g, total, alpha=2.0).masked_fill_(taken, float("inf")).argmin()  # no host sync
        chosen[k] = i
        taken[i] = True
        total += g[i]
    return chosen.cpu()
