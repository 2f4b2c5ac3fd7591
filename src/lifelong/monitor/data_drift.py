"""Data drift between a reference window and a current window.

Three monitors share one API: ``fit(reference)`` stores what the test needs from the
reference window and returns the monitor, ``test(current)`` returns a :class:`DriftReport`.

- :class:`KSDrift`: per-feature two-sample Kolmogorov-Smirnov tests (chi-square on categorical
  features) with a multiple-testing correction, for tabular features.
- :class:`PSIDrift`: population stability index over quantile bins of the reference.
- :class:`MMDDrift`: kernel maximum mean discrepancy with a permutation p-value, for
  embeddings of images or text where per-feature tests mean little.
- :class:`TokenDrift`: token frequencies of rows of token ids (text), whose positions are not
  features and whose values are not quantities.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> monitor = KSDrift(alpha=0.05).fit(rng.normal(size=(500, 3)))
>>> monitor.test(rng.normal(size=(500, 3))).drift
False
>>> monitor.test(rng.normal(loc=0.5, size=(500, 3))).drift
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.errors import ConfigError, DataError

CORRECTIONS = ("bh", "bonferroni", "none")
MAX_LISTED = 20  # features listed by name in a report's details; the count is always complete


@dataclass(frozen=True)
class DriftReport:
    """The outcome of one drift check.

    ``score`` is the monitor's statistic (larger means more drift). For hypothesis tests
    ``p_value`` is set and ``drift`` is ``p_value < threshold`` (``threshold`` is the
    significance level); otherwise ``drift`` is ``score > threshold``.
    """

    monitor: str
    score: float
    threshold: float | None
    drift: bool
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        """A JSON-serialisable dict, ready to be stored as an event."""
        return {
            "type": "drift",
            "monitor": self.monitor,
            "score": _jsonable(self.score),
            "threshold": _jsonable(self.threshold),
            "drift": bool(self.drift),
            "p_value": _jsonable(self.p_value),
            "details": _jsonable(self.details),
        }


class DataDriftMonitor:
    """Base class: ``fit(reference)`` then ``test(current)`` as often as windows arrive."""

    name = "data-drift"
    min_samples = 10

    def fit(self, reference: Any) -> DataDriftMonitor:
        """Remember the reference window ``[n, d]`` (numpy array, torch tensor or nested list)."""
        self.reference_ = _as_2d(reference, "reference", self.min_samples)
        self._fit(self.reference_)
        return self

    def test(self, current: Any) -> DriftReport:
        """Compare the current window ``[m, d]`` with the fitted reference."""
        if not hasattr(self, "reference_"):
            raise DataError(f"{type(self).__name__}: call fit(reference) before test(current)")
        x = _as_2d(current, "current", self.min_samples)
        if x.shape[1] != self.reference_.shape[1]:
            raise DataError(
                f"{type(self).__name__}: current window has {x.shape[1]} features, the reference has "
                f"{self.reference_.shape[1]}; both windows must describe the same features"
            )
        return self._test(x)

    def _fit(self, reference: np.ndarray) -> None:
        pass

    def _test(self, current: np.ndarray) -> DriftReport:
        raise NotImplementedError


class KSDrift(DataDriftMonitor):
    """Per-feature two-sample tests with multiple-testing correction: Kolmogorov-Smirnov on numeric
    features, a chi-square test of homogeneity on categorical ones.

    A feature whose reference values are at most ``max_categories`` distinct integers (flags, codes,
    counts) is categorical, as alibi-detect's TabularDrift treats declared categories: KS with so
    many ties is conservative (a flag moving from 30% to 40% ones in windows of 250 was found 28% of
    the time at a 0.5% false-alarm rate; chi-square 65% at 5%). Values the reference never had count
    as one more category; categories expected fewer than 5 times are pooled (Cochran's rule). Its
    statistic is the total variation distance between the category shares (KS's, for a flag).
    ``max_categories=0`` tests every feature with KS.

    Drift is declared when any feature's corrected p-value falls below ``alpha``;
    ``correction`` is ``"bh"`` (Benjamini-Hochberg false discovery rate), ``"bonferroni"``
    (family-wise error rate) or ``"none"``. The report's p-value is the smallest corrected one.
    """

    name = "ks"

    def __init__(self, alpha: float = 0.05, correction: str = "bh", max_categories: int = 10) -> None:
        self.alpha = alpha
        self.correction = correction
        self.max_categories = max_categories
        _check_alpha(self.alpha)  # here, not at the first fit (KSDrift(alpha=5) was accepted)
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"KSDrift: unknown correction {self.correction!r}; choose one of {CORRECTIONS}")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 0:
            raise ConfigError(f"KSDrift: max_categories must be an integer >= 0, got {max_categories!r}")

    def _fit(self, reference: np.ndarray) -> None:
        self.categories_: dict[int, np.ndarray] = {}  # feature -> its reference values (categorical only)
        for j in range(reference.shape[1] if self.max_categories else 0):
            values = np.unique(reference[:, j])
            if len(values) <= self.max_categories and np.all(values == np.round(values)):
                self.categories_[j] = values

    def _test(self, current: np.ndarray) -> DriftReport:
        from scipy import stats

        d = current.shape[1]
        statistic, p = np.zeros(d), np.ones(d)
        numeric = np.array([j for j in range(d) if j not in self.categories_], dtype=int)
        if len(numeric):
            result = _ks_2samp(self.reference_[:, numeric], current[:, numeric], axis=0)
            statistic[numeric], p[numeric] = result.statistic, result.pvalue
        for j, values in self.categories_.items():
            statistic[j], p[j] = _chi2_homogeneity(self.reference_[:, j], current[:, j], values)
        if self.correction == "bonferroni":
            p = np.minimum(p * len(p), 1.0)
        elif self.correction == "bh":
            p = stats.false_discovery_control(p, method="bh")
        drifted = np.flatnonzero(p < self.alpha)
        top = _top(drifted, statistic)
        p_value = float(p.min())
        return DriftReport(
            self.name,
            score=float(statistic.max()),
            threshold=self.alpha,
            drift=p_value < self.alpha,
            p_value=p_value,
            details={
                "correction": self.correction,
                "n_reference": len(self.reference_),
                "n_current": len(current),
                "n_features": len(p),
                "n_categorical": len(self.categories_),
                "n_drifted": len(drifted),
                "drifted_features": top,
                "statistics": statistic[top].tolist(),
                "p_values": p[top].tolist(),
            },
        )


def _ks_2samp(a: np.ndarray, b: np.ndarray, **kwargs: Any) -> Any:
    """scipy's two-sample KS test, quiet about ties: with ties (pixels, counts, lengths) it falls back to
    the asymptotic p-value and says so once per call, expected here, so not repeated in every worker log."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        return stats.ks_2samp(a, b, **kwargs)


def _relabellings(rng: np.random.Generator, count: int, total: int, n: int) -> np.ndarray:
    """``count`` random labellings of ``total`` pooled rows, ``[count, total]``: 1 marks the ``n`` rows
    taken as the reference window (a permutation test's null distribution)."""
    z = np.zeros((count, total))
    for i in range(count):
        z[i, rng.permutation(total)[:n]] = 1
    return z


def _chi2_homogeneity(reference: np.ndarray, current: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Total variation distance and chi-square p-value of one categorical feature's two windows."""
    from scipy import stats

    counts = np.zeros((2, len(values) + 1))  # the last column: values the reference never had
    for row, x in enumerate((reference, current)):
        index = np.searchsorted(values, x).clip(max=len(values) - 1)
        known = values[index] == x
        counts[row, : len(values)] = np.bincount(index[known], minlength=len(values))
        counts[row, -1] = (~known).sum()
    shares = counts / counts.sum(axis=1, keepdims=True)
    distance = 0.5 * float(np.abs(shares[0] - shares[1]).sum())
    totals = counts.sum(axis=0)
    expected_least = totals * counts.sum(axis=1).min() / counts.sum()
    rare = expected_least < 5  # pooled into one category (Cochran's rule: chi-square needs about 5)
    table, pooled = counts[:, ~rare], counts[:, rare].sum(axis=1)
    if table.shape[1] and pooled.sum() * counts.sum(axis=1).min() / counts.sum() < 5:
        # still too rare (a border pixel's few non-zero values): joined to the least frequent category
        table[:, np.argmin(table.sum(axis=0))] += pooled
    elif pooled.sum():
        table = np.column_stack([table, pooled])
    if table.shape[1] < 2:
        return distance, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return distance, float(stats.chi2.sf(chi2, table.shape[1] - 1))


class PSIDrift(DataDriftMonitor):
    """Population stability index per feature over ``n_bins`` quantile bins of the reference.

    ``PSI = sum_b (q_b - p_b) ln(q_b / p_b)`` with reference shares ``p`` and current shares
    ``q``; empty bins count as ``eps``. The rule of thumb reads < 0.1 as stable, 0.1-0.25 as
    a moderate and > 0.25 as a significant shift. ``aggregate`` ("max" or "mean") turns the
    per-feature indices into the score compared with ``threshold``. That rule ignores the window's
    size, and PSI's no-drift score grows as windows shrink (about 0.78, 0.23 and 0.12 at 50, 100 and
    200 rows of one normal feature, 10 bins, measured in a user trial): keep windows of 200 rows or
    more at 0.25, or use KS, whose p-values account for the size. Tied values (flags, counts,
    constants) are binned apart from the values around them (see :meth:`_shares`).
    """

    name = "psi"

    def __init__(
        self, threshold: float = 0.25, n_bins: int = 10, eps: float = 1e-4, aggregate: str = "max"
    ) -> None:
        self.threshold = threshold
        self.n_bins = n_bins
        self.eps = eps
        self.aggregate = aggregate
        if not isinstance(self.n_bins, int) or self.n_bins < 2:
            raise ConfigError(f"PSIDrift: n_bins must be an integer >= 2, got {self.n_bins!r}")
        if self.aggregate not in ("max", "mean"):
            raise ConfigError(f"PSIDrift: aggregate must be 'max' or 'mean', got {self.aggregate!r}")
        if not (isinstance(threshold, int | float) and 0 < threshold < math.inf):  # -1 reported drift always
            raise ConfigError(f"PSIDrift: threshold must be a positive number, got {threshold!r}")
        if not (isinstance(eps, int | float) and 0 < eps < 1):
            raise ConfigError(f"PSIDrift: eps must lie in (0, 1), got {eps!r}")

    def _fit(self, reference: np.ndarray) -> None:
        if len(reference) < self.n_bins:
            raise DataError(
                f"PSIDrift: the reference has {len(reference)} rows, fewer than n_bins={self.n_bins}"
            )
        # Inner edges [n_bins - 1, d]. Tied quantiles leave bins empty in both windows, which add 0.
        self.edges_ = np.quantile(reference, np.linspace(0, 1, self.n_bins + 1)[1:-1], axis=0)
        self.expected_ = self._shares(reference)

    def _shares(self, x: np.ndarray) -> np.ndarray:
        """Share of rows in each bin, ``[d, 2 n_bins - 1]``, floored at ``eps``.

        A value equal to an edge has a bin of its own, between the bins below and above it: with
        tied quantiles (a flag, a count, a constant) the reference's values are the edges, and a
        value above or below them all lands elsewhere (with ``>=`` alone every value at or over the
        edges shared the last bin: a flag going from 5% to 90% ones, or a constant 0 becoming 1, was
        no drift)."""
        d, width = x.shape[1], 2 * self.n_bins - 1
        edges = self.edges_[:, None, :]
        bins = (x[None] > edges).sum(axis=0) + (x[None] >= edges).sum(axis=0)  # [n, d] in [0, width)
        flat = (bins + np.arange(d) * width).ravel()
        counts = np.bincount(flat, minlength=d * width).reshape(d, width)
        return np.maximum(counts / len(x), self.eps)

    def _test(self, current: np.ndarray) -> DriftReport:
        q, p = self._shares(current), self.expected_
        psi = ((q - p) * np.log(q / p)).sum(axis=1)
        score = float(psi.max() if self.aggregate == "max" else psi.mean())
        drifted = np.flatnonzero(psi > self.threshold)
        top = _top(drifted, psi)
        return DriftReport(
            self.name,
            score=score,
            threshold=self.threshold,
            drift=score > self.threshold,
            details={
                "aggregate": self.aggregate,
                "n_bins": self.n_bins,
                "n_reference": len(self.reference_),
                "n_current": len(current),
                "n_features": len(psi),
                "n_drifted": len(drifted),
                "drifted_features": top,
                "psi": psi[top].tolist(),
            },
        )


class MMDDrift(DataDriftMonitor):
    """Kernel two-sample test: maximum mean discrepancy with an RBF kernel (Gretton et al., 2012).

    The unbiased MMD² between the windows is compared with its distribution under
    ``n_permutations`` random relabellings of the pooled sample; drift when the permutation
    p-value is below ``alpha``. ``bandwidth`` is the kernel's sigma in
    ``exp(-|x - y|² / (2 sigma²))``; None takes the median pairwise distance of the pooled
    sample (the median heuristic). Each window is subsampled to at most ``max_samples`` rows
    so a test costs O(max_samples²) whatever the window sizes. Meant for embeddings.
    """

    name = "mmd"

    def __init__(
        self,
        alpha: float = 0.05,
        n_permutations: int = 200,
        bandwidth: float | None = None,
        max_samples: int = 500,
        seed: int = 0,
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.bandwidth = bandwidth
        self.max_samples = max_samples
        self.seed = seed
        if not isinstance(self.max_samples, int) or self.max_samples < self.min_samples:
            raise ConfigError(f"MMDDrift: max_samples must be an integer >= {self.min_samples}")
        if not isinstance(self.n_permutations, int) or self.n_permutations < 1:
            raise ConfigError(
                f"MMDDrift: n_permutations must be a positive integer, got {self.n_permutations!r}"
            )
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ConfigError(f"MMDDrift: bandwidth must be positive or None, got {self.bandwidth!r}")
        _check_alpha(self.alpha)

    def _fit(self, reference: np.ndarray) -> None:
        self.sample_ = _subsample(reference, self.max_samples, np.random.default_rng([self.seed, 0]))

    def _test(self, current: np.ndarray) -> DriftReport:
        rng = np.random.default_rng([self.seed, 1])
        x, y = self.sample_, _subsample(current, self.max_samples, rng)
        pooled = np.concatenate([x, y])
        sq = np.sum(pooled**2, axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)  # [N, N]
        n, big_n = len(x), len(pooled)
        if self.bandwidth is None:
            off = d2[np.triu_indices(big_n, k=1)]
            sigma2 = float(np.median(off)) or float(off.mean()) or 1.0  # guard against constant data
        else:
            sigma2 = float(self.bandwidth) ** 2
        k = np.exp(-d2 / (2 * sigma2))

        # Row 0 holds the observed labelling; rows 1.. random ones. z[i, j] = 1 when j is in "x".
        observed_row = np.zeros((1, big_n))
        observed_row[0, :n] = 1
        z = np.concatenate([observed_row, _relabellings(rng, self.n_permutations, big_n, n)])
        mmd2 = _unbiased_mmd2(k, z, n)
        observed = float(mmd2[0])
        p_value = float((1 + np.sum(mmd2[1:] >= observed)) / (1 + self.n_permutations))
        return DriftReport(
            self.name,
            score=observed,
            threshold=self.alpha,
            drift=p_value < self.alpha,
            p_value=p_value,
            details={
                "n_reference": len(self.reference_),
                "n_current": len(current),
                "n_used": [len(x), len(y)],
                "bandwidth": math.sqrt(sigma2),
                "n_permutations": self.n_permutations,
            },
        )


class TokenDrift(DataDriftMonitor):
    """Token-frequency drift of rows of token ids (a document, a sequence of codes per row).

    The statistic is the total variation distance between the two windows' token shares, each row
    counted as a bag of ids (``pad_id``, the embedding's ``padding_idx``, left out). Tokens of one
    document are not independent draws, so a chi-square test on the counts would call ordinary
    topic variety drift; the p-value instead comes from ``n_permutations`` relabellings of whole
    rows. Per-position tests (:class:`KSDrift`) read ids as quantities: id 17 is not "more" than id
    16, and a shift of every sentence by one word moves every position.

    With the pad left out, shorter documents of the same words would pass unseen, so the number of
    tokens per row gets a KS test of its own, and the two p-values are Bonferroni-combined (the
    report's ``p_value``; ``details`` keeps both). The report names the ``MAX_LISTED`` tokens whose
    shares moved most (``details["tokens"]``, with both windows' shares).
    """

    name = "tokens"
    CHUNK = 2**22  # floats of one block of permuted token counts: ~32 MB, whatever the vocabulary

    def __init__(
        self, alpha: float = 0.05, n_permutations: int = 200, pad_id: int | None = None, seed: int = 0
    ):
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.pad_id = pad_id
        self.seed = seed
        _check_alpha(self.alpha)
        if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
            raise ConfigError(
                f"TokenDrift: n_permutations must be a positive integer, got {n_permutations!r}"
            )
        if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0):
            raise ConfigError(
                f"TokenDrift: pad_id must be a token id (an integer >= 0) or None, got {pad_id!r}"
            )

    def _fit(self, reference: np.ndarray) -> None:
        _check_token_ids(reference, "reference")

    def _test(self, current: np.ndarray) -> DriftReport:
        from scipy import sparse

        _check_token_ids(current, "current")
        n = len(self.reference_)
        ids = np.concatenate([self.reference_, current]).astype(np.int64)
        rows = np.repeat(np.arange(len(ids)), ids.shape[1])
        kept = ids.ravel() != self.pad_id if self.pad_id is not None else np.ones(ids.size, dtype=bool)
        vocabulary, column = np.unique(ids.ravel()[kept], return_inverse=True)
        counts = sparse.csr_matrix(
            (np.ones(len(column)), (rows[kept], column)), shape=(len(ids), len(vocabulary))
        )  # [rows, tokens met in either window]
        per_row = np.asarray(counts.sum(axis=1)).ravel()
        total = np.asarray(counts.sum(axis=0)).ravel()

        def distances(z: np.ndarray) -> np.ndarray:  # z [p, rows]: 1 marks the "reference" rows
            first = np.asarray(counts.T @ z.T).T  # [p, tokens]
            a, b = first, total - first
            return 0.5 * np.abs(_shares(a, z @ per_row) - _shares(b, (1 - z) @ per_row)).sum(axis=1)

        z0 = np.zeros((1, len(ids)))
        z0[0, :n] = 1
        observed = float(distances(z0)[0])
        rng = np.random.default_rng(self.seed)
        chunk = max(1, self.CHUNK // max(1, len(vocabulary)))
        exceed, done = 0, 0
        while done < self.n_permutations:
            p = min(chunk, self.n_permutations - done)
            exceed += int(np.sum(distances(_relabellings(rng, p, len(ids), n)) >= observed - 1e-12))
            done += p
        p_tokens = (1 + exceed) / (1 + self.n_permutations)
        p_length = None
        if self.pad_id is not None:
            p_length = float(_ks_2samp(per_row[:n], per_row[n:]).pvalue)  # lengths: whole numbers, ties
        p_value = p_tokens if p_length is None else min(1.0, 2 * min(p_tokens, p_length))
        first = np.asarray(counts[:n].sum(axis=0)).ravel()
        ref_shares = _shares(first[None], np.array([first.sum()]))[0]
        cur_shares = _shares((total - first)[None], np.array([total.sum() - first.sum()]))[0]
        moved = np.argsort(-np.abs(cur_shares - ref_shares), kind="stable")[:MAX_LISTED]
        return DriftReport(
            self.name,
            score=observed,
            threshold=self.alpha,
            drift=p_value < self.alpha,
            p_value=p_value,
            details={
                "n_reference": n,
                "n_current": len(current),
                "n_permutations": self.n_permutations,
                "pad_id": self.pad_id,
                "vocabulary": len(vocabulary),
                "p_tokens": p_tokens,
                "p_length": p_length,
                "tokens_per_row": [float(per_row[:n].mean()), float(per_row[n:].mean())],
                "tokens": vocabulary[moved].tolist(),
                "reference_shares": ref_shares[moved].round(5).tolist(),
                "current_shares": cur_shares[moved].round(5).tolist(),
            },
        )


def _shares(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Each row of ``counts`` over its total (a window without tokens has shares of 0)."""
    return counts / np.maximum(totals, 1)[:, None]


def _check_token_ids(x: np.ndarray, what: str) -> None:
    if (x < 0).any() or (x != np.round(x)).any():
        bad = x[(x < 0) | (x != np.round(x))].flat[0]
        raise DataError(
            f"TokenDrift: the {what} window holds {bad:g}, which is not a token id (a whole number >= 0); "
            "this test is for rows of token ids: use KSDrift or MMDDrift for features"
        )


#: the data-drift tests a policy names (``Policy.drift_test``)
DRIFT_TESTS: dict[str, type[DataDriftMonitor]] = {
    "ks": KSDrift,
    "psi": PSIDrift,
    "mmd": MMDDrift,
    "tokens": TokenDrift,
}


def _unbiased_mmd2(k: np.ndarray, z: np.ndarray, n: int) -> np.ndarray:
    """Unbiased MMD² for each labelling in ``z`` ``[P, N]`` (1 marks the n "x" rows) given kernel ``k``."""
    m = k.shape[0] - n
    w = 1 - z
    kz = z @ k  # [P, N]
    diag = np.diag(k)
    xx = (np.einsum("pn,pn->p", kz, z) - z @ diag) / (n * (n - 1))
    yy = (np.einsum("pn,pn->p", w @ k, w) - w @ diag) / (m * (m - 1))
    xy = np.einsum("pn,pn->p", kz, w) / (n * m)
    return xx + yy - 2 * xy


def _as_2d(x: Any, what: str, min_samples: int) -> np.ndarray:
    """Validate a window as a finite float64 ``[n, d]`` array with at least ``min_samples`` rows."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"the {what} window is not numeric ({e}); pass a numpy array or tensor [n, d]") from e
    if a.ndim != 2:
        raise DataError(
            f"the {what} window must be 2-D [n_samples, n_features], got shape {a.shape}; "
            "flatten images with x.reshape(len(x), -1) or, better, embed them first"
        )
    if len(a) < min_samples:
        raise DataError(f"the {what} window has {len(a)} samples; at least {min_samples} are needed")
    if not np.isfinite(a).all():
        raise DataError(f"the {what} window contains NaN or infinite values; drop or impute them first")
    return a


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= k else x[np.sort(rng.choice(len(x), size=k, replace=False))]


def _top(index: np.ndarray, score: np.ndarray) -> list[int]:
    """Up to MAX_LISTED of ``index``, highest ``score`` first."""
    return [int(i) for i in index[np.argsort(-score[index], kind="stable")][:MAX_LISTED]]


def _jsonable(value: Any) -> Any:
    """Plain Python types for json.dumps: numpy scalars and arrays, tuples, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
