# The huren gateway. Build: docker build -t huren .
# Run:  docker run -p 50051:50051 -p 50052:50052 -v "$PWD/pki:/var/lib/huren/pki:ro" \
#           -v huren-state:/var/lib/huren huren
# The pki folder holds ca.pem, gateway.pem and gateway.key (huren pki init, or your own PKI).

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
EXPOSE 50051 50052
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["huren", "health", "--gateway", "localhost:50051", "--pki", "/var/lib/huren/pki", "--timeout", "3"]
ENTRYPOINT ["huren"]
# --init: the first start creates the registry (0700 state, 0600 files); later starts open it.
CMD ["serve", "--init", "--listen", "0.0.0.0:50051", "--registry-listen", "0.0.0.0:50052", "--state-dir", "/var/lib/huren", "--tls-dir", "/var/lib/huren/pki"]
