"""Resumable evaluation store: every score is checkpointed to disk the moment it is known.

The store is one JSON file rewritten atomically (``hwsim.io.atomic_write_json``) after
every evaluation, so a search killed at any instant (even with SIGKILL) leaves either the
previous or the new checkpoint, never a torn one. A rerun with the same inputs (same
*fingerprint*: model, profile, calibration data, metric, groups) reuses every stored
score and only evaluates what is missing, so it ends with the identical result. Scores
are stored as ``float.hex`` strings: exact round trip, and ±inf (a perfect SQNR) survives.

Examples
--------
>>> from hwsim.search.checkpoint import EvalStore
>>> s = EvalStore(lambda c: float(sum(c)))
>>> s.score((1, 2), phase="phase1"), s.score((1, 2), phase="phase2")
(3.0, 3.0)
>>> s.counts()["fresh"], s.counts()["cached"]
(1, 1)
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..io import atomic_write_json
from .problem import Choice, choice_key, parse_choice_key

__all__ = ["EvalStore", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.json"
_FORMAT = "hwsim-search-checkpoint/1"


class EvalStore:
    """Memoised, counted, checkpointed ``score(choice)``.

    Parameters
    ----------
    score_fn : the expensive evaluation.
    path : checkpoint file (``None``: memory only).
    fingerprint : identifies the inputs; a checkpoint with another fingerprint is ignored
        (reported in :attr:`discarded`) and overwritten.
    on_eval : called as ``on_eval(choice, score, fresh)`` after each lookup (progress bars).

    Counting: ``fresh`` evaluations ran ``score_fn`` in this process; ``resumed`` were read
    from the checkpoint of an earlier run; ``cached`` were repeated requests in this run.
    Per-phase counts of distinct evaluated configurations are in ``counts()["by_phase"]``.
    """

    def __init__(self, score_fn: Callable[[Choice], float], path=None, fingerprint: str = "",
                 on_eval: Callable | None = None):
        self._fn = score_fn
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.on_eval = on_eval
        self._lock = threading.Lock()
        self._scores: dict[str, float] = {}
        self._origin: dict[str, str] = {}          # key -> "resumed" | "fresh"
        self._phase_of: dict[str, str] = {}        # key -> first phase that asked for it
        self._order: list[str] = []                # evaluation order (checkpoint order)
        self._cached_hits = 0
        self._used: dict[str, str] = {}            # keys requested in this run -> first phase
        self.discarded = False
        if self.path is not None and self.path.is_file():
            self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self):
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self.path}: unreadable search checkpoint ({e}); delete it to start over") from None
        if data.get("format") != _FORMAT or data.get("fingerprint") != self.fingerprint:
            self.discarded = True
            return
        for rec in data.get("evaluations", []):
            key = rec["choice"]
            self._scores[key] = float.fromhex(rec["score"])
            self._origin[key] = "resumed"
            self._phase_of[key] = rec.get("phase", "")
            self._order.append(key)

    def _save_locked(self):
        if self.path is None:
            return
        atomic_write_json(self.path, {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "evaluations": [{"choice": k, "score": self._scores[k].hex(), "phase": self._phase_of.get(k, "")}
                            for k in self._order],
        })

    # -- evaluation ----------------------------------------------------------------------------
    def known(self, choice: Choice) -> bool:
        return choice_key(choice) in self._scores

    def peek(self, choice: Choice) -> float | None:
        return self._scores.get(choice_key(choice))

    def score(self, choice: Choice, phase: str = "") -> float:
        """The score of ``choice``: stored if known, else evaluated and checkpointed."""
        key = choice_key(choice)
        with self._lock:
            if key in self._used:
                self._cached_hits += 1
            else:
                self._used[key] = phase
            s = self._scores.get(key)
        fresh = s is None
        if fresh:
            s = float(self._fn(tuple(choice)))
            with self._lock:
                if key not in self._scores:     # another thread may have finished it meanwhile
                    self._scores[key] = s
                    self._origin[key] = "fresh"
                    self._phase_of[key] = phase
                    self._order.append(key)
                    self._save_locked()
                s = self._scores[key]
        if self.on_eval is not None:
            self.on_eval(tuple(choice), s, fresh)
        return s

    def items(self):
        """``[(choice, score)]`` in evaluation order (resumed ones first)."""
        return [(parse_choice_key(k), self._scores[k]) for k in self._order]

    def counts(self) -> dict:
        """Counts for this run.

        ``fresh``: evaluated in this process; ``resumed``: used in this run and read from an
        earlier run's checkpoint; ``cached``: repeated requests; ``distinct``: distinct
        configurations used in this run; ``by_phase``: distinct configurations by the phase
        that first asked for them.
        """
        fresh = sum(1 for k in self._used if self._origin.get(k) == "fresh")
        resumed = sum(1 for k in self._used if self._origin.get(k) == "resumed")
        by_phase = Counter(self._used.values())
        return {"fresh": fresh, "resumed": resumed, "cached": self._cached_hits,
                "distinct": len(self._used), "by_phase": dict(sorted(by_phase.items()))}
