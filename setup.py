"""Build the optional compiled code: the LSTM/GRU kernels (bioseqnn/csrc/rnn.c) and the
FASTA block cutter and residue translation (bioseqnn/csrc/fasta.c).

Everything else about the package is in pyproject.toml. The extension is optional: if
no C compiler is available the install still succeeds, and bioseqnn runs its recurrent
layers through torch operations and cuts FASTA blocks in Python instead (slower on
CPU; the same results).
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3", "-fvisibility=hidden"]

setup(
    ext_modules=[
        Extension(
            "bioseqnn._rnn",
            sources=["bioseqnn/csrc/rnn.c", "bioseqnn/csrc/fasta.c"],
            depends=["bioseqnn/csrc/rnn_impl.h"],
            extra_compile_args=flags,
            optional=True,
        )
    ]
)
