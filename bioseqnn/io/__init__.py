"""Reading inputs and writing outputs.

- :mod:`.files`: paths and '-' (standard input), compression found by magic bytes,
  checked text lines.
- :mod:`.sniff`: what an input is (sequences or a table), decided once from its first line.
- :mod:`.fasta`: FASTA/FASTQ records, by blocks or by lines.
- :mod:`.tables`: label tables (CSV/TSV).
- :mod:`.series`: series tables (one row per time step), streamed in whole series.
- :mod:`.intervals`: BED files and interval tables.
- :mod:`.genome`: a reference genome (FASTA with its index) through pysam.
- :mod:`.vcf`: VCF/BCF records in, an annotated VCF out.
- :mod:`.outputs`: atomic, compressed outputs and the checks made before a run writes.
"""
