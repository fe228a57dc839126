# The huren gateway, one image for both roles: a hub (the default) or a verifier replica, chosen
# by HUREN_* variables alone (docs/configuration.md). Build: docker build -t huren .
# Run a hub:  docker run -p 50051:50051 -p 50052:50052 -v "$PWD/pki:/var/lib/huren/pki:ro" \
#                 -v huren-state:/var/lib/huren huren
# The pki folder holds ca.pem (the operators' CA), gateway.pem and gateway.key (huren pki init, or
# your own PKI). HUREN_INIT=1 (set below) creates the registry at the first start (0700 state,
# 0600 files) and opens it later. -e HUREN_METRICS_LISTEN=0.0.0.0:9464 serves Prometheus metrics,
# -e HUREN_HEALTH_LISTEN=0.0.0.0:50053 the plaintext health port for orchestrators' probes,
# -e HUREN_LOG_FORMAT=text plain log lines. When another CA than ca.pem signed gateway.pem, mount
# it and name it for the health check: -e HUREN_HEALTH_CA=/var/lib/huren/pki/server-ca.pem.
# Run a replica: the same image with -e HUREN_INIT=0 -e HUREN_REPLICA_OF=HUB:50051
#     -e HUREN_TRUST_LIST_KEY=FILE and subject.key, link.key in its state directory
#     (docs/scaling.md; on Kubernetes: deploy/k8s, where `huren front --run` from this image
#     stands in front of each replica).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateway gateway
COPY regions regions
# Wheels for huren and exactly the pinned versions of its dependencies.
RUN pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels .

FROM python:3.11-slim
# Debian's nginx, for `huren front --run` (docs/front.md): on Kubernetes each verifier pod runs
# this same image a second time as a sidecar, nginx refusing the calls past the replica's bound
# in C, which its Python event loop cannot do under overload (docs/performance.md, "Latency and
# overload"). It runs only when asked, as user huren, never by default: the image's command is
# still a hub serving TLS itself on 50051 (which the HEALTHCHECK below dials).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/huren --create-home huren
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels huren && rm -rf /wheels
USER huren
WORKDIR /var/lib/huren
VOLUME ["/var/lib/huren"]
ENV HUREN_LISTEN=0.0.0.0:50051 \
    HUREN_REGISTRY_LISTEN=0.0.0.0:50052 \
    HUREN_STATE_DIR=/var/lib/huren \
    HUREN_TLS_DIR=/var/lib/huren/pki \
    HUREN_LOG_FORMAT=json \
    HUREN_INIT=1
EXPOSE 50051 50052 50053 9464
# Whatever host the certificate names: the check dials 127.0.0.1 and asks for the first name in
# gateway.pem, trusting HUREN_HEALTH_CA (default: ca.pem) for the gateway's certificate.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD huren health --gateway 127.0.0.1:50051 --ca "${HUREN_HEALTH_CA:-/var/lib/huren/pki/ca.pem}" --name-from-certificate /var/lib/huren/pki/gateway.pem --timeout 3
ENTRYPOINT ["huren"]
# Configured by HUREN_* only, so that one command serves both roles (a replica refuses --init on
# its command line, and HUREN_INIT=0 turns the image's default off).
CMD ["serve"]
