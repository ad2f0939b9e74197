# bioseqnn in a container: CPU image by default.
#
#   docker build -t bioseqnn .
#   docker run --rm -v "$PWD":/data bioseqnn train seqs.fasta labels.csv -o model.bsnn
#
# CUDA variant: the same file with the CUDA build of torch (its wheels bring the CUDA
# libraries; the host needs the NVIDIA driver and the NVIDIA container toolkit):
#
#   docker build -t bioseqnn:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker run --rm --gpus all -v "$PWD":/data bioseqnn:cuda train ... --device cuda
#
# See docs/install.md. tests/pipelines/test_packaging.py builds the image where a container engine
# runs, and runs the smoke test below against a local install everywhere.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Extras to install: plots (matplotlib) by default; e.g. "plots,export,genome"
ARG EXTRAS=plots
# a C compiler for the optional LSTM/GRU kernels
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/bioseqnn
ENV PATH=/opt/bioseqnn/bin:$PATH
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml setup.py README.md LICENSE MANIFEST.in /src/
COPY bioseqnn /src/bioseqnn
RUN pip install --no-cache-dir "/src[${EXTRAS}]" "torch==${TORCH_VERSION}" \
        --extra-index-url "${TORCH_INDEX}"

FROM python:${PYTHON_VERSION}-slim
COPY --from=build /opt/bioseqnn /opt/bioseqnn
ENV PATH=/opt/bioseqnn/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --create-home --uid 1000 bioseqnn
USER bioseqnn

# Smoke test at build time, as the image's user: the version, then a tiny train and predict.
COPY --chown=bioseqnn:bioseqnn conda/tiny.fasta conda/tiny.csv /tmp/smoke/
RUN cd /tmp/smoke \
 && test "$(bioseqnn --version)" = "bioseqnn $(python -c 'import bioseqnn; print(bioseqnn.__version__)')" \
 && bioseqnn train tiny.fasta tiny.csv -o tiny.bsnn --arch cnn --channels 8,8 --epochs 1 --quiet \
 && bioseqnn predict tiny.bsnn tiny.fasta -o tiny.tsv --quiet \
 && test "$(wc -l < tiny.tsv)" -eq 159 \
 && cd / && rm -rf /tmp/smoke

WORKDIR /data
ENTRYPOINT ["bioseqnn"]
CMD ["--help"]
