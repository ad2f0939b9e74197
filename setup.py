"""Build the optional compiled LSTM/GRU kernels (bioseqnn/csrc/rnn.c).

Everything else about the package is in pyproject.toml. The extension is optional: if
no C compiler is available the install still succeeds, and bioseqnn runs its recurrent
layers through torch operations instead (slower on CPU; the same numbers).
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3", "-fvisibility=hidden"]

setup(
    ext_modules=[
        Extension(
            "bioseqnn._rnn",
            sources=["bioseqnn/csrc/rnn.c"],
            depends=["bioseqnn/csrc/rnn_impl.h"],
            extra_compile_args=flags,
            optional=True,
        )
    ]
)
