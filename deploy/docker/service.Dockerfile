# One image per service, from one recipe: `--build-arg SERVICE=manager` (idea, manager, coder, reviewer,
# runner). Built from the repository root; each image holds the shared library, its service and only what
# they declare in their pyproject.toml (the runner no plotting, the coder no hyperparameter search, ...),
# at the versions pinned in requirements.txt. OFFLINE=1 installs only from build/wheels (`make wheels`: no
# network during the build, as `make images OFFLINE=1` and the tests do); without it a clean checkout
# builds with no host virtualenv, from the package index (`docker compose build`).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG SERVICE
ARG OFFLINE=""
WORKDIR /src
# build/wheels may be absent (a clean checkout): the pattern then matches nothing and only the pins come.
COPY requirements.txt requirements-sklearn.txt build/wheel[s] /wheels/
COPY libs/airlab libs/airlab
COPY services/${SERVICE} services/${SERVICE}
# The pins as constraints (their -r line would install scikit-learn into every image).
RUN grep -hv '^-r' /wheels/requirements.txt /wheels/requirements-sklearn.txt > /wheels/pins.txt \
    && python3 -m venv /opt/airlab \
    && /opt/airlab/bin/pip install --no-cache-dir ${OFFLINE:+--no-index} --find-links /wheels \
        -c /wheels/pins.txt setuptools wheel \
    && /opt/airlab/bin/pip install --no-cache-dir ${OFFLINE:+--no-index} --find-links /wheels \
        --no-build-isolation -c /wheels/pins.txt ./libs/airlab "./services/${SERVICE}"

FROM ${BASE_IMAGE}
ARG SERVICE
RUN groupadd --system --gid 10001 airlab \
    && useradd --system --uid 10001 --gid 10001 --no-create-home airlab \
    && mkdir -p /var/lib/airlab /etc/airlab \
    && chown airlab:airlab /var/lib/airlab
COPY --from=build /opt/airlab /opt/airlab
# Config files mounted here (compose, k8s) win over the defaults packaged with the library, file by file.
ENV PATH=/opt/airlab/bin:$PATH \
    AIRLAB_SERVICE=${SERVICE} \
    AIRLAB_CONFIG_DIR=/etc/airlab \
    AIRLAB_GRPC_HOST=0.0.0.0 \
    AIRLAB_GRPC_PORT=50051 \
    AIRLAB_WORKSPACE=/var/lib/airlab \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/airlab
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["python3", "-m", "airlab.healthcheck"]
# The same command `airlab up` runs for the service: airlab-idea, airlab-manager, ...
CMD ["sh", "-c", "exec airlab-${AIRLAB_SERVICE}"]
