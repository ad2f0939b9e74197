"""Alphabets, ambiguity codes, detection and the vectorised encoder."""

from __future__ import annotations

import numpy as np
import pytest

from bioseqnn.alphabets import DNA, PROTEIN, RNA, byte_histogram, detect_alphabet, get_alphabet
from bioseqnn.encoding import Encoder, pad_codes
from bioseqnn.errors import UsageError


def onehot(alphabet, seq: str) -> np.ndarray:
    codes, offsets, bad = Encoder(alphabet).encode([seq.encode()])
    assert not bad
    return alphabet.onehot_table()[codes]


def test_dna_letters_are_unit_vectors_and_lowercase_reads_the_same() -> None:
    x = onehot(DNA, "ACGTacgt")
    np.testing.assert_array_equal(x[:4], np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(x[4:], x[:4])


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("N", [0.25, 0.25, 0.25, 0.25]),
        ("R", [0.5, 0, 0.5, 0]),
        ("Y", [0, 0.5, 0, 0.5]),
        ("K", [0, 0, 0.5, 0.5]),
        ("M", [0.5, 0.5, 0, 0]),
        ("B", [0, 1 / 3, 1 / 3, 1 / 3]),
        ("V", [1 / 3, 1 / 3, 1 / 3, 0]),
    ],
)
def test_nucleotide_ambiguity_codes_are_fractional(symbol: str, expected: list[float]) -> None:
    np.testing.assert_allclose(onehot(DNA, symbol)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(onehot(RNA, symbol.lower())[0], expected, rtol=1e-6)


def test_u_and_t_share_a_channel_in_dna_and_rna() -> None:
    np.testing.assert_array_equal(onehot(DNA, "U"), onehot(DNA, "T"))
    np.testing.assert_array_equal(onehot(RNA, "T"), onehot(RNA, "U"))
    assert DNA.compatible_with(RNA) and RNA.compatible_with(DNA)
    assert not PROTEIN.compatible_with(DNA)


def test_protein_ambiguity_codes() -> None:
    x = onehot(PROTEIN, "XBZJ")
    np.testing.assert_allclose(x[0], np.full(20, 1 / 20), rtol=1e-6)
    letters = PROTEIN.letters
    assert x[1][letters.index("D")] == x[1][letters.index("N")] == pytest.approx(0.5)
    assert x[2][letters.index("E")] == x[2][letters.index("Q")] == pytest.approx(0.5)
    assert x[3][letters.index("I")] == x[3][letters.index("L")] == pytest.approx(0.5)
    assert x.sum(axis=1) == pytest.approx([1, 1, 1, 1])


def test_protein_terminal_stop_is_dropped_but_not_a_middle_one() -> None:
    codes, offsets, bad = Encoder(PROTEIN).encode([b"MKV*", b"MK*V"])
    assert list(np.diff(offsets)) == [3, 4]
    assert len(bad) == 1 and bad[0].index == 1 and bad[0].position == 3 and bad[0].char == "*"


def test_terminal_stops_among_empty_and_starred_sequences_match_one_at_a_time() -> None:
    seqs = [b"*", b"", b"MK**", b"M*K", b"", b"A*", b"KV", b"**", b"W*"]
    codes, offsets, bad = Encoder(PROTEIN, on_invalid="mask").encode(seqs)
    for i, seq in enumerate(seqs):
        alone, _, _ = Encoder(PROTEIN, on_invalid="mask").encode([seq])
        np.testing.assert_array_equal(codes[offsets[i] : offsets[i + 1]], alone)
    # a stop alone is kept, an invalid symbol: dropped, it would leave no residues
    assert list(np.diff(offsets)) == [1, 0, 3, 3, 0, 1, 2, 1, 1]
    assert [(b.index, b.position) for b in bad] == [(0, 1), (2, 3), (3, 2), (7, 1)]


def test_invalid_symbols_report_sequence_and_one_based_position() -> None:
    codes, offsets, bad = Encoder(DNA).encode([b"ACGT", b"ACGX-T", b"AC.T"])
    assert [(b.index, b.position, b.char) for b in bad] == [(1, 4, "X"), (2, 3, ".")]


def test_mask_policy_reads_invalid_symbols_as_fully_ambiguous() -> None:
    enc = Encoder(DNA, on_invalid="mask")
    codes, _, bad = enc.encode([b"AXT"])
    row = DNA.onehot_table()[codes[1]]
    np.testing.assert_allclose(row, [0.25] * 4)
    assert len(bad) == 1


def test_encoding_matches_a_per_character_reference() -> None:
    rng = np.random.default_rng(0)
    symbols = "".join(DNA.symbols) + "".join(DNA.symbols).lower()
    seqs = ["".join(rng.choice(list(symbols), size=rng.integers(1, 60))) for _ in range(50)]
    codes, offsets, _ = Encoder(DNA).encode([s.encode() for s in seqs])
    table = DNA.onehot_table()
    for i, s in enumerate(seqs):
        ref = np.array([table[DNA.symbol_list.index(c.upper()) + 1] for c in s])
        np.testing.assert_array_equal(table[codes[offsets[i] : offsets[i + 1]]], ref)


def test_pad_codes_right_pads_with_zero() -> None:
    codes, offsets, _ = Encoder(DNA).encode([b"ACG", b"T", b"GGGGG"])
    padded, lengths = pad_codes(codes, offsets, [2, 0, 1])
    assert padded.shape == (3, 5) and list(lengths) == [5, 3, 1]
    assert padded[1, 3:].tolist() == [0, 0] and padded[2, 1:].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("seqs", "name"),
    [
        ([b"ACGTNACGT", b"acgtt"], "dna"),
        ([b"ACGUUAGC", b"GGAUC"], "rna"),
        ([b"MKVLATTLLG", b"ACDEFGHIKLMNPQ"], "protein"),
        ([b"ACGTRACGTACGTACGTACGTACGT"], "dna"),
        # gaps, stops and digits are no evidence: an alignment of DNA stays DNA
        ([b"ACGT--ACGT-ACG", b"AC.GT*", b"ACGT12"], "dna"),
        ([b"ACGU--ACGU", b"GG-AUC"], "rna"),
        ([b"MKVL--ATTLLG*", b"AC-DEF"], "protein"),
        ([b"---", b"*1"], "protein"),  # no letter at all: left to the encoding to name
    ],
)
def test_detection(seqs: list[bytes], name: str) -> None:
    assert detect_alphabet(byte_histogram(seqs)).alphabet.name == name


@pytest.mark.slow
def test_counting_a_long_record_takes_memory_in_slices() -> None:
    """np.bincount copies what it counts as int64: a 1-Gb record took 8 GB before the
    model ran, and ran out with a message that named no record. Counted in slices, a
    200-Mb record fits in a 1 GB data segment (the whole copy alone would take 1.6 GB),
    with the same counts."""
    import subprocess
    import sys

    probe = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))\n"
        "from bioseqnn.alphabets import byte_histogram\n"
        "c = byte_histogram([b'ACGT' * 50_000_000, b'NN'])\n"
        "print(c[ord('A')], c[ord('T')], c[ord('N')], int(c.sum()))\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["50000000", "50000000", "2", "200000002"]
    small = [b"ACGTN" * 7, b"MKV"]
    expected = np.bincount(np.frombuffer(b"".join(small), np.uint8), minlength=256)
    assert np.array_equal(byte_histogram(small), expected)


def test_unknown_alphabet_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown alphabet"):
        get_alphabet("klingon")
    assert get_alphabet("DNA") is DNA


def test_reverse_complement_table_swaps_iupac_pairs() -> None:
    comp = DNA.complement_codes()
    sym = DNA.symbol_list
    mapping = {s: sym[comp[i + 1] - 1] for i, s in enumerate(sym)}
    assert mapping["A"] == "T" and mapping["C"] == "G" and mapping["R"] == "Y"
    assert mapping["K"] == "M" and mapping["N"] == "N" and mapping["B"] == "V"


@pytest.mark.parametrize("alphabet", [DNA, RNA, PROTEIN])
@pytest.mark.parametrize("on_invalid", ["error", "mask"])
def test_runs_encode_as_the_joined_sequences(alphabet, on_invalid: str) -> None:
    """The compiled translation of runs (32 bytes a step where the CPU has AVX2) gives
    the codes, offsets and invalid symbols of the general way, for every byte value,
    for invalid symbols at every offset of a vector step and in the tails, and for
    terminal stops."""
    rng = np.random.default_rng(1)
    valid = np.frombuffer(("".join(alphabet.symbols) * 2).lower().encode(), np.uint8)
    for trial in range(200):
        lengths = rng.integers(0, 150, rng.integers(1, 6))
        joined = bytearray(rng.choice(valid, int(lengths.sum())).tobytes())
        if trial % 2 and len(joined):  # one byte of any value at any place
            joined[int(rng.integers(len(joined)))] = int(rng.integers(256))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if trial % 3 == 0 and lengths[0]:  # a terminal stop (a protein drops it)
            joined[offsets[1] - 1] = ord("*")
        cuts = sorted(rng.choice(len(offsets), 2))  # runs hold whole sequences
        runs = [
            memoryview(joined)[offsets[a] : offsets[b]]
            for a, b in zip([0, *cuts], [*cuts, len(offsets) - 1], strict=True)
        ]
        enc = Encoder(alphabet, on_invalid)
        codes, offs, bad = enc.encode_runs(runs, offsets)
        ref_codes, ref_offs, ref_bad = enc.encode_joined(bytearray(joined), offsets)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(offs, ref_offs)
        assert bad == ref_bad
        ref = [alphabet.byte_table()[c] for c in joined]
        if alphabet is not PROTEIN and on_invalid == "error":
            assert list(codes) == ref
