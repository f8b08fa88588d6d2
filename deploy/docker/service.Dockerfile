# One image per service, from one recipe: `--build-arg SERVICE=manager` (idea, manager, coder, reviewer,
# runner). Built from the repository root, so the shared library is installed once beside the service, and
# from the wheels `make wheels` puts in build/wheels (the pinned requirements), so the build itself needs
# no network. `make images` does both.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG SERVICE
WORKDIR /src
COPY build/wheels /wheels
COPY requirements.txt requirements-sklearn.txt ./
RUN python3 -m venv /opt/airlab \
    && /opt/airlab/bin/pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt setuptools wheel
COPY libs/airlab libs/airlab
COPY services/${SERVICE} services/${SERVICE}
RUN /opt/airlab/bin/pip install --no-cache-dir --no-index --no-deps --no-build-isolation \
        ./libs/airlab "./services/${SERVICE}"

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
