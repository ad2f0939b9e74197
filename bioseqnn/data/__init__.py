"""Datasets.

- :mod:`.sets`: compact storage of sequences (uint8 codes) and their targets.
- :mod:`.reading`: inputs read and encoded into sets.
- :mod:`.labels`: labels joined to sequences by id, with one join report.
- :mod:`.batches`: validation splits and length-bucketed batches.
"""
