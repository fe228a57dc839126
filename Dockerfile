# The huren gateway. Build: docker build -t huren .
# Run:  docker run -p 50051:50051 -p 50052:50052 -v "$PWD/pki:/var/lib/huren/pki:ro" \
#           -v huren-state:/var/lib/huren huren
# The pki folder holds ca.pem (the operators' CA), gateway.pem and gateway.key (huren pki init, or
# your own PKI). Every `huren serve` option may be given as a HUREN_* variable instead
# (docs/configuration.md): -e HUREN_METRICS_LISTEN=0.0.0.0:9464 serves Prometheus metrics,
# -e HUREN_LOG_FORMAT=text plain log lines. When another CA than ca.pem signed gateway.pem, mount
# it and name it for the health check: -e HUREN_HEALTH_CA=/var/lib/huren/pki/server-ca.pem.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateway gateway
COPY regions regions
# Wheels for huren and exactly the pinned versions of its dependencies.
RUN pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels .

FROM python:3.11-slim
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
    HUREN_LOG_FORMAT=json
EXPOSE 50051 50052 9464
# Whatever host the certificate names: the check dials 127.0.0.1 and asks for the first name in
# gateway.pem, trusting HUREN_HEALTH_CA (default: ca.pem) for the gateway's certificate.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD huren health --gateway 127.0.0.1:50051 --ca "${HUREN_HEALTH_CA:-/var/lib/huren/pki/ca.pem}" --name-from-certificate /var/lib/huren/pki/gateway.pem --timeout 3
ENTRYPOINT ["huren"]
# --init: the first start creates the registry (0700 state, 0600 files); later starts open it.
CMD ["serve", "--init"]
