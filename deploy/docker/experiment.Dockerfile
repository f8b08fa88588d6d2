# The image the runner's docker and kubernetes sandboxes run experiments in: Python with PyTorch and
# scikit-learn (the job templates' dependencies). TORCH_INDEX picks the build: without it the default index
# gives the pinned CPU wheel; for GPUs (`make experiment-image-cuda TORCH_INDEX=...`), a PyTorch CUDA wheel
# index matching the host's driver, searched beside the default one (its torch==2.13.0+cuXXX wins).
# Jobs run unprivileged (uid 65534, or the runner's own uid) with a read-only root: nothing here is written.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=""
COPY requirements-experiment.txt requirements-sklearn.txt /tmp/requirements/
RUN python3 -m venv /opt/experiment \
    && /opt/experiment/bin/pip install --no-cache-dir ${TORCH_INDEX:+--extra-index-url ${TORCH_INDEX}} \
        -r /tmp/requirements/requirements-experiment.txt \
    && rm -r /tmp/requirements
ENV PATH=/opt/experiment/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65534:65534
WORKDIR /airlab/work
CMD ["python3"]
