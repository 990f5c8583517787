# syntax=docker/dockerfile:1
# The GPU workers' image: one image for the generator and the trainer, the command picks which (the ECS task
# definitions in infra/deploy/workers.py pass `python -m <catalog module>`). Built from the repository root:
#   docker build -f infra/docker/worker-gpu.Dockerfile -t lorafoundry-worker-gpu .
#   docker run --gpus all lorafoundry-worker-gpu                              # a generator (the default)
#   docker run --gpus all lorafoundry-worker-gpu python -m workers.trainer    # a trainer
#
# CUDA 12.8 and PyTorch's cu128 wheels, chosen together (tests/unit/test_dockerfiles.py checks that the base's
# major.minor is the index's). PyTorch has published cu128 builds of every release since 2.7; that the lock's
# release is on https://download.pytorch.org/whl/cu128 could not be checked from the machine this was written
# on (no route to it): the first build says. CUDA 12.8 runs every GPU the instance-type parameters offer (A10G
# on the default g5, L4/L40S on g6/g6e, A100/H100 on p4d/p5: sm_80 to sm_90, and Blackwell) on any R535-or-newer
# data-center driver (CUDA's minor-version compatibility, which the base's NVIDIA_REQUIRE_CUDA allows for those
# GPUs), as ECS's GPU-optimized AMI has; cu130 (CUDA 13) would require an R580 driver on every host.
# The `base` flavour of the CUDA image, not `runtime`: torch's CUDA wheels bring their own cuBLAS, cuDNN, NCCL
# (the nvidia-* wheels, found through torch's RPATH), so `runtime`'s copies would add ~2.5 GB that nothing loads.
# What the base gives is the CUDA runtime and NVIDIA_REQUIRE_CUDA, so the container toolkit refuses a host
# whose driver is too old, at start, instead of a CUDA error inside the first job.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
# uv installs the interpreter: the lock is resolved for Python 3.11, which Ubuntu 24.04 does not package. The
# same uv as the lock's (the test checks it), whose pinned python-build-standalone builds make the patch
# release reproducible.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM ${CUDA_IMAGE}
ARG TORCH_CUDA=cu128
ARG PYTHON_VERSION=3.11
# The workers run as this user, not root; infra/deploy/workers.py gives the host's model cache to the same id.
ARG WORKER_UID=10001
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
RUN UV_NO_CACHE=1 uv python install "${PYTHON_VERSION}" \
    && UV_NO_CACHE=1 uv venv --seed --python "${PYTHON_VERSION}" /opt/venv
WORKDIR /app
# The CUDA build of torch at the lock's version (the lock pins the CPU build, `torch==X+cpu`: the same release,
# another index), on its own first; it brings its nvidia-* libraries and triton from PyTorch's index. Then every
# other package at its locked version and hash (torch's block left out, since `+cpu` is not what is installed),
# then the project without resolving, then `pip check` and a check that torch is the CUDA build asked for.
COPY requirements.lock ./
RUN pip install "torch==$(sed -n 's/^torch==\([^+ ]*\).*/\1/p' requirements.lock)+${TORCH_CUDA}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
    && awk '/^[A-Za-z0-9]/ { skip = /^torch==/ } !skip' requirements.lock > /tmp/requirements-without-torch.txt \
    && pip install --require-hashes --no-deps -r /tmp/requirements-without-torch.txt \
    && rm /tmp/requirements-without-torch.txt
# The workers' code only: `functions/` is the Lambdas' (the import graph keeps workers from needing it).
COPY pyproject.toml README.md ./
COPY events ./events
COPY infra ./infra
COPY workers ./workers
RUN pip install --no-deps . \
    && pip check \
    && python -c "import sys, torch; sys.exit(torch.version.cuda.replace('.', '') != '${TORCH_CUDA#cu}')"

# The model cache: base models and adapters fetched from S3 once per instance (ECS mounts the host's cache here).
# The heartbeat the health check reads, so the image's own HEALTHCHECK works under plain `docker run` too (the
# task definition sets both to the same values).
ENV LF_MODEL_CACHE_DIR=/models \
    LF_WORKER_HEARTBEAT_PATH=/tmp/lorafoundry/heartbeat
RUN groupadd --gid "${WORKER_UID}" lorafoundry \
    && useradd --uid "${WORKER_UID}" --gid "${WORKER_UID}" --create-home --shell /usr/sbin/nologin lorafoundry \
    && install -d -o "${WORKER_UID}" -g "${WORKER_UID}" /models
VOLUME ["/models"]
USER ${WORKER_UID}:${WORKER_UID}

# A SIGTERM lets the job in hand finish (a generator) or hands the training back at its next step (a trainer);
# the task definition's stop timeout bounds the wait before SIGKILL.
STOPSIGNAL SIGTERM
# Docker's own check (ECS runs the task definition's, the same command): the worker's loop beats a heartbeat.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 CMD ["python", "-m", "workers.health"]
CMD ["python", "-m", "workers.generator"]
