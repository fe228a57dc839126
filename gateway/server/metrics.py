"""The Prometheus endpoint (``huren serve --metrics-listen HOST:PORT``): the one importer of
``prometheus_client``. What each metric means is in docs/scaling.md (Metrics).

:class:`PrometheusObserver` is both the gateway's :class:`~gateway.metrics.Observer` (verdicts,
online issuers, trust refreshes) and the calls' :class:`~gateway.server.calls.CallObserver`.
On the verification path it costs a dictionary look-up and one counter increment per distinct
(status, reason, colour, region) of a call: a batch's verdicts are counted together. Gauges
that a clock or another object knows (trust version and age, freshness, circuit breakers) are
read when Prometheus scrapes, not kept up to date on every call.

It serves its own registry, so that two gateways in one process (tests) do not mix, on its own
port, in a thread of prometheus_client's HTTP server: plain HTTP, no personal data.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import grpc
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.clock import Clock
from gateway.metrics import OnlineOutcome, SecretsFailure, verdict_labels
from gateway.model import IssuerId, Verdict
from gateway.service import VerificationService

# No *_created series: one more per label set, and never read.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds: a verification takes about half a millisecond; an online issuer up to its timeout."""


class PrometheusObserver:
    """Counts what the gateway reports and serves it to Prometheus (see the module docstring).

    ``role``: ``hub`` or ``replica`` (the ``huren_info`` metric)."""

    def __init__(self, clock: Clock, role: str) -> None:
        self.registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self._service: VerificationService | None = None
        self._clock = clock
        self._verdicts = Counter(
            "huren_verdicts",
            "Verdicts answered, by status, reason, colour and the issuing region",
            ["status", "reason", "colour", "region"],
            registry=self.registry,
        )
        self._verdict_children: dict[tuple[str, str, str, str], Any] = {}
        self._calls = Counter(
            "huren_rpcs",
            "Calls answered, by method and gRPC status",
            ["method", "code"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "huren_rpc_duration_seconds",
            "Time from a call's start to its end in the server, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._call_children: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}
        self._in_flight = Gauge(
            "huren_rpcs_in_flight", "Calls being served now", registry=self.registry
        )
        self._rejected = Counter(
            "huren_rpcs_rejected",
            "Calls refused RESOURCE_EXHAUSTED because --max-concurrent-rpcs were in flight",
            ["method"],
            registry=self.registry,
        )
        self._online = Counter(
            "huren_online_calls",
            "Questions to online issuers, by issuer and outcome (answered, failed, fast_failed)",
            ["issuer", "outcome"],
            registry=self.registry,
        )
        self._list_bytes = Gauge(
            "huren_trust_list_bytes",
            "Hub only: characters of the trust list it last signed (published or not)",
            registry=self.registry,
        )
        self._list_over = Gauge(
            "huren_trust_list_over_limit",
            "Hub only: 1 while the trust list it last signed is over the size a replica "
            "receives (not published: replicas keep the last list that fit), else 0",
            registry=self.registry,
        )
        self._secrets_failures = Counter(
            "huren_replica_secrets_fetch_failures",
            "A replica's failed fetches of its replica secrets from the hub, by reason "
            "(refused, unreachable, malformed, error)",
            ["reason"],
            registry=self.registry,
        )
        self._secrets: tuple[int | None, float | None] | None = None
        """A replica with a certificate: the trust version of the secrets held (None: none
        held) and when (monotonic) an answer last came."""
        info = Gauge(
            "huren_info", "This gateway's role (hub or replica)", ["role"], registry=self.registry
        )
        info.labels(role).set(1)
        self._lock = threading.Lock()
        self._served: tuple[int, float] | None = None
        self._refreshed: float | None = None
        self._breakers: Callable[[], dict[IssuerId, bool]] = dict
        self.registry.register(_TrustCollector(self))
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- the gateway's Observer

    def verdicts(self, verdicts: Sequence[Verdict]) -> None:
        if len(verdicts) == 1:
            self._verdict_child(verdict_labels(verdicts[0])).inc()
            return
        for labels, count in collections.Counter(map(verdict_labels, verdicts)).items():
            self._verdict_child(labels).inc(count)

    def _verdict_child(self, labels: tuple[str, str, str, str]) -> Any:
        child = self._verdict_children.get(labels)
        if child is None:
            child = self._verdict_children[labels] = self._verdicts.labels(*labels)
        return child

    def online_call(self, issuer: IssuerId, outcome: OnlineOutcome) -> None:
        self._online.labels(str(issuer), outcome.value).inc()

    def trust_refreshed(self, version: int, ago: float = 0.0) -> None:
        now = time.monotonic()
        with self._lock:
            if self._served is None or self._served[0] != version:
                self._served = (version, now)
            self._refreshed = now - max(0.0, ago)

    def trust_list_signed(self, size: int, *, published: bool) -> None:
        self._list_bytes.set(size)
        self._list_over.set(0 if published else 1)

    def replica_secrets(self, version: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            if self._secrets is None:  # every reason at 0 from the start: a bounded set
                for reason in SecretsFailure:
                    self._secrets_failures.labels(reason.value)
            fetched = now if version is not None else (self._secrets or (None, None))[1]
            self._secrets = (version, fetched)

    def secrets_fetch_failed(self, reason: SecretsFailure) -> None:
        self._secrets_failures.labels(reason.value).inc()

    def watch(
        self,
        service: VerificationService,
        breakers: Callable[[], dict[IssuerId, bool]] | None = None,
    ) -> None:
        """Read the trust gauges from ``service``, and the online issuers' circuit breakers from
        ``breakers``, at each scrape."""
        self._service = service
        if breakers is not None:
            self._breakers = breakers

    # -------------------------------------------------------------- the calls' observer

    def call_finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        children = self._call_children.get((method, code))
        if children is None:
            children = self._call_children[(method, code)] = (
                self._calls.labels(method, code.name),
                self._duration.labels(method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def call_rejected(self, method: str) -> None:
        self._rejected.labels(method).inc()

    def in_flight(self, count: int) -> None:
        self._in_flight.set(count)

    # -------------------------------------------------------------- the endpoint

    def serve(self, listen: str) -> int:
        """Serve ``/metrics`` on ``listen`` (HOST:PORT, port 0 picks); returns the port.

        Raises:
            OSError: naming the address if it cannot be bound.
        """
        host, _, port = listen.rpartition(":")
        try:
            self._server, self._thread = start_http_server(
                int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry
            )
        except (OSError, ValueError) as e:
            raise OSError(f"cannot serve metrics on {listen}: {e}") from e
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def trust_figures(self) -> Iterator[tuple[str, str, float]]:
        """(name, help, value) of each trust gauge that has a value now."""
        service = self._service
        if service is None:
            return
        now: datetime = self._clock()
        yield "huren_trust_version", "Trust version served", float(service.trust.current.version)
        with self._lock:
            served, refreshed = self._served, self._refreshed
        monotonic = time.monotonic()
        if served is not None:
            yield (
                "huren_trust_age_seconds",
                "Seconds since this process began serving the current trust version",
                monotonic - served[1],
            )
        if refreshed is not None:
            yield (
                "huren_trust_last_refresh_seconds",
                "Seconds since the trust was last confirmed (a hub: its registry verified; a "
                "replica: it took a verified trust list from the hub)",
                monotonic - refreshed,
            )
        fresh_until = service.trust.fresh_until
        if fresh_until is not None:
            yield (
                "huren_trust_fresh_seconds",
                "Seconds until the held trust list's fresh_until (negative: past it)",
                (fresh_until - now).total_seconds(),
            )
        yield (
            "huren_trust_stale",
            "1 while every code is answered ERR_TRUST_STALE, else 0",
            1.0 if service.trust_problem(now) is not None else 0.0,
        )
        yield from self._secrets_figures(monotonic)

    def _secrets_figures(self, monotonic: float) -> Iterator[tuple[str, str, float]]:
        """A replica with a certificate's gauges of its replica secrets."""
        with self._lock:
            secrets = self._secrets
        if secrets is None:
            return
        version, fetched = secrets
        yield (
            "huren_replica_secrets_held",
            "1 while this replica holds the replica secrets from its hub, else 0 (codes are "
            "then ERR_SECRET_UNAVAILABLE)",
            0.0 if version is None else 1.0,
        )
        if version is not None:
            yield (
                "huren_replica_secrets_version",
                "The hub's trust version the replica secrets held were last vouched for at",
                float(version),
            )
        if fetched is not None:
            yield (
                "huren_replica_secrets_last_fetch_seconds",
                "Seconds since the hub last answered this replica's fetch of its secrets",
                monotonic - fetched,
            )


class _TrustCollector(Collector):
    """The gauges read at scrape time (see :meth:`PrometheusObserver.trust_figures`)."""

    def __init__(self, owner: PrometheusObserver) -> None:
        self._owner = owner

    def describe(self) -> list[Any]:
        return []  # values differ per scrape; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        for name, text, value in self._owner.trust_figures():
            yield GaugeMetricFamily(name, text, value=value)
        breaker = GaugeMetricFamily(
            "huren_online_breaker_open",
            "1 while the online issuer's circuit breaker is open (its codes fail fast)",
            labels=["issuer"],
        )
        for issuer, is_open in sorted(self._owner._breakers().items()):
            breaker.add_metric([str(issuer)], 1.0 if is_open else 0.0)
        yield breaker
