"""Variants: what differs between kinds of inputs and outputs, each in one module with its
option rules and loading (and, where they differ, its prediction rows and evaluation).

- :mod:`.labelled`: labelled records (sequences or series joined with a labels table).
- :mod:`.perposition`: one label per residue.
- :mod:`.lm`: language models (next-residue prediction; scoring and sampling).
- :mod:`.series`: numeric series (one row per time step).
- :mod:`.intervals`: genome intervals cut from a reference.
- :mod:`.base`: what train hands to a loader and gets back.
"""
