"""Variant effects in Snakemake: split a VCF by chromosome, score the parts in parallel with
'bioseqnn variants', gather the rows.

    snakemake -s example_data/workflow/variants.smk --cores 4 --directory run/ \
        --config model=m.bsnn genome=ref.fa vcf=calls.vcf.gz

The parts are gathered in the order of the chromosomes in the VCF (the order of their first
records), so a VCF sorted by chromosome gives its rows back in input order. The genome's
index is built once, by its own rule, before the scoring jobs read it.
"""

import gzip
from pathlib import Path


configfile: str(Path(workflow.basedir) / "variants.yaml")


def data(key):
    path = Path(config[key])
    return str(path if path.is_absolute() else (Path(workflow.basedir) / path).resolve())


def chromosomes(vcf):
    """The chromosomes of the VCF's records, in order of appearance (plain or gzip)."""
    with open(vcf, "rb") as fh:
        opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
    seen = {}
    with opener(vcf, "rt") as lines:
        for line in lines:
            if not line.startswith("#"):
                seen.setdefault(line.split("\t", 1)[0], None)
    return list(seen)


CHROMS = [str(c) for c in config.get("chroms") or chromosomes(data("vcf"))]
GENOME = data("genome")


rule all:
    input:
        "results/variants.tsv",


rule index:
    input:
        GENOME,
    output:
        GENOME + ".fai",
    run:
        from bioseqnn.io.genome import Genome

        Genome(input[0]).close()  # builds the .fai (and .gzi for bgzip) beside the FASTA


rule split_vcf:
    input:
        data("vcf"),
    output:
        temp("results/variants/split/{chrom}.vcf"),
    shell:
        # the header, then the chromosome's records (gzip -cdf passes plain text through)
        "gzip -cdf {input} | awk -F '\\t' -v c='{wildcards.chrom}' '/^#/ || $1 == c'"
        " > {output}"


rule score:
    input:
        model=data("model"),
        genome=GENOME,
        index=GENOME + ".fai",
        vcf="results/variants/split/{chrom}.vcf",
    output:
        "results/variants/by_chrom/{chrom}.tsv",
    log:
        "results/logs/variants_{chrom}.log",
    params:
        extra=config.get("variants_args", ""),
    threads: 1
    shell:
        "bioseqnn variants {input.model} {input.vcf} --genome {input.genome} -o {output}"
        " --threads {threads} {params.extra} 2> {log}"


rule gather:
    input:
        expand("results/variants/by_chrom/{chrom}.tsv", chrom=CHROMS),
    output:
        "results/variants.tsv",
    shell:
        # the header from the first part only; parts in chromosome order
        "awk 'FNR > 1 || NR == 1' {input} > {output}"
