"""Calibration observers: per-tensor statistics and the range-selection rules built on them.

One pass over the calibration data fills a :class:`TensorStats` per tensor (min, max and a
histogram). Every observer is then a pure function of those statistics and the target
integer format, so ranges for *any* bit-width are derived later without re-running the
model:

* ``minmax``     — the observed min and max;
* ``percentile`` — the ``p``-th percentile (default 99.99 %; |x| for symmetric ranges);
* ``mse``        — the clipping range minimising the expected quantization MSE
  (rounding noise ``Δ²/12`` inside the range plus squared clipping error outside), i.e.
  the SQNR-optimal range over a 1-D grid of shrink factors (AIMET / PPQ style);
* ``entropy``    — TensorRT's KL-divergence threshold search on a 2048-bin histogram of
  |x| with ``2^(bits-1)`` levels (``2^bits`` for non-negative tensors).

The histogram lives on an absolute grid of power-of-two bin width (bin ``k`` covers
``[k·w, (k+1)·w)``). When later batches widen the range the grid is extended, and when it
would exceed ``max_bins`` adjacent bins are merged (width doubled), so the result does not
depend on how the data were batched beyond that merging.

Examples
--------
>>> import numpy as np
>>> from hwsim.quant.observers import TensorStats, observe_range
>>> st = TensorStats()
>>> st.update(np.linspace(-1, 1, 10001, dtype=np.float32))
>>> observe_range(st, "minmax", bits=8, signed=True, symmetric=True)
(-1.0, 1.0)
>>> lo, hi = observe_range(st, "percentile", bits=8, signed=True, symmetric=True)
>>> 0.99 < hi < 1.0
True
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TensorStats", "OBSERVERS", "observe_range", "DEFAULT_PERCENTILE"]

OBSERVERS = ("minmax", "percentile", "mse", "entropy")
DEFAULT_PERCENTILE = 99.99
_TARGET_BINS = 2048
_MAX_BINS = 8192


@dataclass(eq=False)
class TensorStats:
    """Running statistics of one tensor: count, min, max, non-negativity, histogram.

    ``hist[i]`` counts values in ``[(k0+i)·width, (k0+i+1)·width)``.
    """

    count: int = 0
    min: float = np.inf
    max: float = -np.inf
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    k0: int = 0
    width: float = 0.0
    max_bins: int = _MAX_BINS
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def nonnegative(self) -> bool:
        return self.count > 0 and self.min >= 0.0

    @property
    def edges(self) -> np.ndarray:
        return (self.k0 + np.arange(self.hist.size + 1)) * self.width

    @property
    def centers(self) -> np.ndarray:
        return (self.k0 + np.arange(self.hist.size) + 0.5) * self.width

    # -- accumulation ----------------------------------------------------------------------
    def _coarsen(self):
        k = self.k0 + np.arange(self.hist.size)
        newk = np.floor_divide(k, 2)
        nk0 = int(newk[0]) if newk.size else self.k0 // 2
        merged = np.bincount(newk - nk0, weights=self.hist, minlength=int(newk[-1] - nk0 + 1) if newk.size else 0)
        self.hist = merged.astype(np.int64)
        self.k0 = nk0
        self.width *= 2.0

    def update(self, x: np.ndarray) -> None:
        """Add the values of ``x`` (any shape, finite) to the statistics."""
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        self._cache.clear()
        if self.width == 0.0:
            span = hi - lo
            mag = max(abs(lo), abs(hi))
            base = span / _TARGET_BINS if span > 0 else (mag * 2.0 ** -12 if mag > 0 else 2.0 ** -40)
            base = max(base, mag * 2.0 ** -50, 2.0 ** -126)
            self.width = float(2.0 ** np.floor(np.log2(base)))
            self.k0 = int(np.floor(lo / self.width))
            self.hist = np.zeros(0, np.int64)
        allo, alhi = min(lo, self.min), max(hi, self.max)
        while (np.floor(alhi / self.width) - np.floor(allo / self.width) + 1) > self.max_bins:
            self._coarsen()
        klo, khi = int(np.floor(allo / self.width)), int(np.floor(alhi / self.width))
        if self.hist.size == 0:
            self.k0 = klo
            self.hist = np.zeros(khi - klo + 1, np.int64)
        else:
            left = self.k0 - klo
            right = khi - (self.k0 + self.hist.size - 1)
            if left > 0 or right > 0:
                self.hist = np.concatenate([np.zeros(max(left, 0), np.int64), self.hist,
                                            np.zeros(max(right, 0), np.int64)])
                self.k0 = min(self.k0, klo)
        idx = np.floor(x / self.width).astype(np.int64) - self.k0
        np.clip(idx, 0, self.hist.size - 1, out=idx)
        self.hist += np.bincount(idx, minlength=self.hist.size)
        self.count += x.size
        self.min, self.max = allo, alhi

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/hist": self.hist,
                f"{prefix}/meta": np.array([self.count, self.min, self.max, self.k0, self.width], np.float64)}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "TensorStats":
        count, mn, mx, k0, width = arrays[f"{prefix}/meta"].tolist()
        return cls(count=int(count), min=mn, max=mx, hist=np.asarray(arrays[f"{prefix}/hist"], np.int64),
                   k0=int(k0), width=width)


# -- observers -------------------------------------------------------------------------------

def _quantile(stats: TensorStats, q: float) -> float:
    """Value below which a fraction ``q`` of the samples lie (linear within a bin)."""
    cdf = np.cumsum(stats.hist, dtype=np.float64)
    target = q * cdf[-1]
    i = int(np.searchsorted(cdf, target, side="left"))
    i = min(i, stats.hist.size - 1)
    prev = cdf[i - 1] if i > 0 else 0.0
    frac = (target - prev) / stats.hist[i] if stats.hist[i] else 0.0
    v = (stats.k0 + i + frac) * stats.width
    return float(np.clip(v, stats.min, stats.max))


def _abs_hist(stats: TensorStats, nbins: int = _TARGET_BINS) -> tuple[np.ndarray, float]:
    """Histogram of |x| on ``nbins`` bins over [0, max|x|]; returns (counts, bin width)."""
    amax = max(abs(stats.min), abs(stats.max))
    if amax == 0.0:
        return np.zeros(nbins), 0.0
    c = np.abs(stats.centers)
    h, _ = np.histogram(np.minimum(c, amax), bins=nbins, range=(0.0, amax), weights=stats.hist)
    return h, amax / nbins


def _abs_quantile(stats: TensorStats, q: float) -> float:
    """Quantile of |x|: the folded histogram, linear within a bin."""
    a = np.abs(stats.centers)
    order = np.argsort(a, kind="stable")
    a, n = a[order], stats.hist[order].astype(np.float64)
    cdf = np.cumsum(n)
    target = q * cdf[-1]
    i = min(int(np.searchsorted(cdf, target, side="left")), n.size - 1)
    prev = cdf[i - 1] if i > 0 else 0.0
    frac = (target - prev) / n[i] if n[i] else 1.0
    v = a[i] - 0.5 * stats.width + frac * stats.width
    return float(np.clip(v, 0.0, max(abs(stats.min), abs(stats.max))))


def _percentile(stats, p, symmetric):
    if stats.nonnegative:
        return 0.0, _quantile(stats, p / 100.0)
    if symmetric:
        t = _abs_quantile(stats, p / 100.0)
        return -t, t
    return _quantile(stats, 1.0 - p / 100.0), _quantile(stats, p / 100.0)


def _mse(stats, bits, signed, symmetric, n_grid=100):
    c = stats.centers
    n = stats.hist.astype(np.float64)
    keep = n > 0
    c, n = c[keep], n[keep]
    levels = 2.0 ** bits - 1.0
    alphas = np.linspace(1.0 / n_grid, 1.0, n_grid)
    if symmetric or stats.nonnegative:
        amax = max(abs(stats.min), abs(stats.max))
        if stats.nonnegative:
            lo, hi = np.zeros_like(alphas), alphas * stats.max
            step = hi / (levels if not signed else (2.0 ** (bits - 1) - 1))
        else:
            hi = alphas * amax
            lo = -hi
            step = hi / (2.0 ** (bits - 1) - 1) if signed else 2 * hi / levels
    else:
        lo, hi = alphas * min(stats.min, 0.0), alphas * max(stats.max, 0.0)
        step = (hi - lo) / levels
    cc = c[None, :]
    clipped = np.clip(cc, lo[:, None], hi[:, None])
    inside = (cc >= lo[:, None]) & (cc <= hi[:, None])
    err = np.where(inside, (step[:, None] ** 2) / 12.0, (cc - clipped) ** 2) @ n
    best = int(np.argmin(err))
    return float(lo[best]), float(hi[best])


def _kl_threshold(h: np.ndarray, n_levels: int, stride: int | None = None) -> int:
    """TensorRT's search: the bin count ``i`` minimising KL(P_i || Q_i)."""
    nb = h.size
    if n_levels >= nb:
        return nb
    best_i, best_kl = nb, np.inf
    stride = stride or max(1, (nb - n_levels) // 256)
    for i in range(n_levels, nb + 1, stride):
        p = h[:i].astype(np.float64).copy()
        p[i - 1] += h[i:].sum()
        nz = h[:i] > 0
        # merge the i reference bins into n_levels quantized bins, then expand back
        idx = (np.arange(i) * n_levels) // i
        qsum = np.bincount(idx, weights=h[:i], minlength=n_levels)
        qcnt = np.bincount(idx, weights=nz, minlength=n_levels)
        q = np.where(nz, qsum[idx] / np.maximum(qcnt[idx], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p /= ps
        q /= qs
        m = p > 0
        if np.any(m & (q == 0)):
            kl = np.inf
        else:
            kl = float(np.sum(p[m] * np.log(p[m] / q[m])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _entropy(stats, bits, signed):
    h, w = _abs_hist(stats)
    if w == 0.0:
        return 0.0, 0.0
    n_levels = 2 ** bits if (stats.nonnegative and not signed) else 2 ** (bits - 1)
    # a spike of exact zeros (ReLU outputs, padding) says nothing about the tail but would
    # dominate the divergence and drag the threshold down: count the zero bin like its neighbour
    h = h.copy()
    if h.size > 1:
        h[0] = min(h[0], h[1])
    i = _kl_threshold(h, n_levels)
    t = min(i * w, max(abs(stats.min), abs(stats.max)))
    if stats.nonnegative:
        return 0.0, t
    return max(stats.min, -t), min(stats.max, t)


def observe_range(stats: TensorStats, observer: str = "minmax", *, bits: int = 8, signed: bool = True,
                  symmetric: bool = False, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """The real range ``(lo, hi)`` the observer picks for a ``bits``-bit format.

    Results are cached inside ``stats`` (keyed by observer, bits, signedness, symmetry).
    An empty ``stats`` gives ``(0.0, 0.0)``.
    """
    if observer not in OBSERVERS:
        raise ValueError(f"observer must be one of {', '.join(OBSERVERS)}, got {observer!r}")
    key = (observer, bits, signed, symmetric, percentile)
    got = stats._cache.get(key)
    if got is not None:
        return got
    if stats.count == 0:
        got = (0.0, 0.0)
    elif observer == "minmax" or stats.max == stats.min:
        got = (float(stats.min), float(stats.max))
    elif observer == "percentile":
        got = _percentile(stats, percentile, symmetric)
    elif observer == "mse":
        got = _mse(stats, bits, signed, symmetric)
    else:
        got = _entropy(stats, bits, signed)
    got = (float(got[0]), float(got[1]))
    stats._cache[key] = got
    return got
