"""Reading inputs and writing outputs.

- :mod:`.files`: paths and '-' (standard input), compression found by magic bytes,
  checked text lines.
- :mod:`.sniff`: what an input is (sequences or a table), decided once from its first line.
- :mod:`.fasta`: FASTA/FASTQ records, by blocks or by lines.
- :mod:`.tables`: label tables (CSV/TSV).
- :mod:`.outputs`: atomic, compressed outputs and the checks made before a run writes.
"""
