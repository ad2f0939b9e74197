"""Seeded shuffles that keep a sequence's dinucleotide counts exactly.

The Altschul-Erickson construction: a sequence is an Eulerian path through the graph
whose vertices are letters and whose edges are its consecutive pairs. Choosing, for every
vertex but the last letter, a random *last* exit edge such that those edges form a tree
toward the last letter, and ordering each vertex's other exits at random, gives a random
Eulerian path from the same first letter: a shuffle with the same first and last letters
and the same count of every pair.
"""

from __future__ import annotations

import numpy as np


def _last_edges_reach_end(last: dict[int, int], end: int) -> bool:
    for start in last:
        seen, v = set(), start
        while v != end:
            if v in seen:
                return False
            seen.add(v)
            v = last[v]
    return True


def dinucleotide_shuffle(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random sequence with exactly the dinucleotide counts of ``codes``.

    Parameters
    ----------
    codes
        (L,) integer codes of one sequence (any alphabet; an ambiguity code is one more
        letter).
    rng
        The random generator (seed it for reproducible shuffles).

    Returns
    -------
    numpy.ndarray
        (L,) codes of the same dtype, with the same first and last code.
    """
    codes = np.asarray(codes)
    if len(codes) < 3:
        return codes.copy()
    exits: dict[int, list[int]] = {}
    for a, b in zip(codes[:-1].tolist(), codes[1:].tolist(), strict=True):
        exits.setdefault(a, []).append(b)
    end = int(codes[-1])
    while True:
        last = {v: int(out[rng.integers(len(out))]) for v, out in exits.items() if v != end}
        if _last_edges_reach_end(last, end):
            break
    order: dict[int, list[int]] = {}
    for v, out in exits.items():
        rest = list(out)
        if v in last:
            rest.remove(last[v])
        rng.shuffle(rest)
        if v in last:
            rest.append(last[v])
        order[v] = rest
    position = dict.fromkeys(order, 0)
    out_codes = np.empty_like(codes)
    v = int(codes[0])
    out_codes[0] = v
    for i in range(1, len(codes)):
        nxt = order[v][position[v]]
        position[v] += 1
        out_codes[i] = nxt
        v = nxt
    return out_codes


def dinucleotide_shuffles(codes: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` shuffles of one sequence, (n, L), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return (
        np.stack([dinucleotide_shuffle(codes, rng) for _ in range(n)])
        if n
        else np.empty((0, len(codes)), dtype=np.asarray(codes).dtype)
    )
