"""The front: nginx in front of a gateway, refusing the calls past a bound outside Python.

A gateway refuses a call past its own bound (:mod:`gateway.server.admission`) only once its
event loop has taken the call up, which costs about what an empty call costs. Under three times
its capacity the loop cannot even refuse every excess call, and gRPC's core ends those it holds
too long with ``CANCELLED`` and no reason (docs/performance.md, "Latency and overload"). The
front counts calls in flight in C, in nginx, and answers a call past its bound at once with the
**same** ``RESOURCE_EXHAUSTED`` status the gateway would send: the same message form, the same
``grpc-status-details-bin`` (a ``google.rpc.Status`` holding the gateway's ``ErrorInfo``, built by
:func:`gateway.server.status.refusal`) and the same ``huren-reason`` trailer. A client cannot tell
the front's refusal from the gateway's, and never sees a bare ``CANCELLED`` for an overload.

:func:`render` writes the nginx configuration from :class:`FrontSettings`; it is pure. What the
configuration does:

1. **Unary calls** (every path but the streaming methods) share one bound, ``max_calls``
   (nginx's ``limit_conn``, which counts each HTTP/2 request), and carry at most one gRPC
   message of ``max_message_bytes`` (a larger body: ``RESOURCE_EXHAUSTED``, as the gateway's own
   message limit answers).
2. **Streams** (each method of the gateway's services that streams, read from the descriptors)
   are counted apart, as in the gateway (a replica's ``WatchTrustList`` lasts for hours and
   must not take a verification's place), and may stay idle for ``stream_idle_seconds`` (a
   trust-list heartbeat comes every third of ``--trust-fresh-for``). Their bound at the front,
   ``max_streams``, is a backstop set *above* the gateway's (by default twice): streams are
   opened rarely, so the gateway's own admission refuses them cheaply, with its answer relayed;
   a stream refused by nginx itself reaches a client that has already written as ``INTERNAL``
   (its write meets a closed stream), not as ``RESOURCE_EXHAUSTED``.
3. A call past its bound is answered by nginx with HTTP/2 headers only (a gRPC "Trailers-Only"
   answer): ``grpc-status: 8`` and the details above. Nothing is queued: nginx takes each call
   as it comes, and an admitted one goes to the gateway over a kept-alive connection.
4. TLS: with a certificate the front serves TLS (the gateway's own certificate, so clients see
   no change); the gateway behind may be plaintext on loopback (``grpc://``) or TLS (``grpcs://``,
   its certificate verified against ``upstream_ca`` for ``upstream_name``, a DNS name: nginx
   does not match IP addresses in certificates).
5. When the gateway cannot be reached or does not answer in time, the front answers
   ``UNAVAILABLE`` (with the same kind of details) instead of a bare HTTP 502.

Paths in the configuration are written as given; nginx reads relative ones from its prefix
directory (``nginx -p``), where the pid file and its temporary directories go too.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from gateway._generated.huren.v1 import registry_pb2, verifier_pb2
from gateway.errors import Overloaded, RequestInvalid, Unavailable
from gateway.limits import Limits
from gateway.server.reflection import V1_SERVICE, V1ALPHA_SERVICE
from gateway.server.status import DETAILS_KEY, REASON_KEY, refusal

GRPC_FRAME_HEADER = 5
"""Bytes before each gRPC message on the wire: a flag byte and a 4-byte length."""
MAX_BOUND = 100_000
MAX_WORKERS = 64
MIN_IDLE_SECONDS, MAX_IDLE_SECONDS = 60, 7 * 24 * 3600
DEFAULT_STREAM_IDLE_SECONDS = 3600
CLIENT_CONNECTIONS = 4096
"""Client connections each nginx worker keeps beside its connections to the gateway."""
UNARY_TIMEOUT_SECONDS = 60
DEFAULT_UNARY_BODY_SECONDS = 10
"""How long a unary call's request may take to arrive, between two reads: its place is held
meanwhile, so a client sending headers and no body must not keep it (one message, ≤ 1 MiB)."""
MAX_UNARY_BODY_SECONDS = 60
"""How long nginx waits on the gateway between two reads of a unary call's answer."""

_GATEWAY = Limits()
_SCHEMES = ("grpc", "grpcs")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])")
_PATH_REFUSED = re.compile(r"[\s;{}\"'\\$#]")
_SERVICES = (
    verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"],
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
)
_REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
"""Served under both reflection names (:mod:`gateway.server.reflection`)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A host and a port, as nginx writes them (an IPv6 host in brackets)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Address:
        host, colon, port = text.rpartition(":")
        if not colon or _HOST.fullmatch(host) is None or not port.isdigit() or len(port) > 5:
            raise _invalid(f"{what} must be HOST:PORT (an IPv6 host in brackets), not {text!r}")
        number = int(port)
        if not 0 <= number <= 65535:
            raise _invalid(f"{what}'s port must be 0 to 65535, not {number}")
        return cls(host, number)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """The gateway behind the front: ``grpc://HOST:PORT`` (plaintext) or ``grpcs://HOST:PORT``."""

    scheme: str
    address: Address

    @classmethod
    def parse(cls, text: str) -> Upstream:
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in _SCHEMES:
            raise _invalid(f"the upstream must be grpc:// or grpcs://HOST:PORT, not {text!r}")
        address = Address.parse(rest, "the upstream")
        if address.port == 0:
            raise _invalid("the upstream's port must be the gateway's, not 0")
        return cls(scheme, address)

    @property
    def tls(self) -> bool:
        return self.scheme == "grpcs"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True, slots=True)
class FrontSettings:
    """What :func:`render` needs; :meth:`check` refuses what nginx would misread.

    Attributes:
        listen: where the front listens (port 0 only with ``reuseport``, see below).
        upstream: the gateway's verification address behind it.
        max_calls: unary calls in flight through the front at once; default the gateway's.
        max_streams: streaming calls open at once, counted apart; a backstop, by default twice
            the gateway's bound (see the module docstring).
        max_message_bytes: the largest request message of a unary call; default the gateway's.
        certificate, key: the front serves TLS with these (both or neither).
        upstream_ca: the CA that signed the gateway's certificate (``grpcs://`` only).
        upstream_name: the name the gateway's certificate must hold (``grpcs://``; default the
            upstream's host).
        stream_idle_seconds: how long a stream may carry nothing before nginx ends it.
        unary_body_seconds: how long a unary call's request may pause (see
            ``DEFAULT_UNARY_BODY_SECONDS``).
        workers: nginx worker processes (the bounds are shared between them).
        reuseport: listen with ``SO_REUSEPORT`` (``huren front --run`` holds the port that way).
    """

    listen: Address
    upstream: Upstream
    max_calls: int = _GATEWAY.max_concurrent_rpcs
    max_streams: int = 2 * _GATEWAY.max_concurrent_streams
    max_message_bytes: int = _GATEWAY.max_message_bytes
    certificate: PurePath | None = None
    key: PurePath | None = None
    upstream_ca: PurePath | None = None
    upstream_name: str | None = None
    stream_idle_seconds: int = DEFAULT_STREAM_IDLE_SECONDS
    unary_body_seconds: int = DEFAULT_UNARY_BODY_SECONDS
    workers: int = 1
    reuseport: bool = False

    def check(self) -> None:
        for what, value, top in (
            ("max_calls", self.max_calls, MAX_BOUND),
            ("max_streams", self.max_streams, MAX_BOUND),
            ("workers", self.workers, MAX_WORKERS),
            ("unary_body_seconds", self.unary_body_seconds, MAX_UNARY_BODY_SECONDS),
            ("max_message_bytes", self.max_message_bytes, 1 << 30),
        ):
            if not 1 <= value <= top:
                raise _invalid(f"{what} must be 1 to {top:,}, not {value}")
        if not MIN_IDLE_SECONDS <= self.stream_idle_seconds <= MAX_IDLE_SECONDS:
            raise _invalid(
                f"stream_idle_seconds must be {MIN_IDLE_SECONDS} to {MAX_IDLE_SECONDS:,}, "
                f"not {self.stream_idle_seconds}"
            )
        if (self.certificate is None) != (self.key is None):
            raise _invalid("the front's certificate and key go together")
        if self.upstream.tls and self.upstream_ca is None:
            raise _invalid("a grpcs:// upstream needs the CA that signed its certificate")
        if not self.upstream.tls and (self.upstream_ca or self.upstream_name):
            raise _invalid("a CA or name for the upstream means grpcs://, not grpc://")
        for what, path in (
            ("certificate", self.certificate),
            ("key", self.key),
            ("upstream CA", self.upstream_ca),
        ):
            if path is not None and (not str(path) or _PATH_REFUSED.search(str(path))):
                raise _invalid(f"the {what}'s path must not hold spaces, quotes, ;{{}}$#\\")
        name = self.upstream_name
        if name is not None and (_HOST.fullmatch(name) is None or _is_ip(name)):
            raise _invalid(f"the upstream's name must be a DNS name, not {name!r}")
        if self.upstream.tls and name is None and _is_ip(self.upstream.address.host):
            raise _invalid(
                "nginx checks an upstream's certificate for a DNS name only: give the name "
                "the gateway's certificate holds (upstream_name, e.g. localhost)"
            )
        if self.listen.port == 0 and not self.reuseport:
            raise _invalid("nginx cannot pick a port: give --listen a port (or use --run)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def streaming_paths() -> list[str]:
    """The HTTP/2 paths of every method of the gateway's services that streams."""
    return sorted(
        f"/{name}/{method.name}"
        for name, service in (
            *((service.full_name, service) for service in _SERVICES),
            (V1ALPHA_SERVICE, _REFLECTION),
            (V1_SERVICE, _REFLECTION),
        )
        for method in service.methods
        if method.client_streaming or method.server_streaming
    )


def refusal_headers(error: Exception) -> list[tuple[str, str]]:
    """The HTTP/2 headers of a Trailers-Only gRPC answer that ends a call as ``error`` would
    end it on the gateway (binary values in unpadded base64, as gRPC sends them)."""
    code, message, details, named = refusal(error)
    packed = base64.b64encode(details).decode("ascii").rstrip("=")
    return [
        ("grpc-status", str(code.value[0])),
        ("grpc-message", _percent(message)),
        (DETAILS_KEY, packed),
        (REASON_KEY, named),
    ]


def render(settings: FrontSettings) -> str:
    """The nginx configuration of the front (see the module docstring)."""
    settings.check()
    return "\n".join(_lines(settings)) + "\n"


def _lines(s: FrontSettings) -> Iterator[str]:
    kinds = (("calls", s.max_calls), ("streams", s.max_streams))
    upstream_connections = s.max_calls + s.max_streams
    yield from (
        "# The huren front (nginx), written by `huren front`: see docs/front.md. Calls past a",
        "# bound are refused RESOURCE_EXHAUSTED here, with the gateway's own error details.",
        "daemon off;",
        f"worker_processes {s.workers};",
        "pid nginx.pid;",
        "error_log stderr warn;",
        # Each call in flight holds a client stream and a connection to the gateway: the open
        # files must cover both, or nginx fails calls with EMFILE rather than refusing them.
        f"worker_rlimit_nofile {2 * (CLIENT_CONNECTIONS + upstream_connections)};",
        f"events {{ worker_connections {CLIENT_CONNECTIONS + upstream_connections}; }}",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
    )
    for temporary in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        yield f"    {temporary}_temp_path {temporary}_temp;"
    yield from (
        "    keepalive_requests 4294967295;",
        "    keepalive_timeout 3600s;",
        f"    http2_max_concurrent_streams {upstream_connections};",
        "    limit_conn_status 429;",
        "    limit_conn_log_level info;",
    )
    for kind, _ in kinds:
        yield f"    limit_conn_zone $server_name zone=huren_{kind}:1m;"
    yield from (
        "    upstream huren {",
        f"        server {s.upstream.address};",
        f"        keepalive {upstream_connections};",
        "        keepalive_requests 4294967295;",
        "        keepalive_timeout 3600s;",
        "    }",
        "    server {",
        f"        listen {s.listen}{' ssl' if s.certificate else ''} http2"
        f"{' reuseport' if s.reuseport else ''};",
        "        server_name huren;",
    )
    if s.certificate is not None:
        yield from (
            f"        ssl_certificate {s.certificate};",
            f"        ssl_certificate_key {s.key};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
        )
    yield "        location / {"
    yield from _passing(s, "calls", s.max_calls)
    yield f"            client_max_body_size {s.max_message_bytes + GRPC_FRAME_HEADER};"
    yield f"            client_body_timeout {s.unary_body_seconds}s;"
    yield f"            grpc_read_timeout {UNARY_TIMEOUT_SECONDS}s;"
    yield "        }"
    idle = f"{s.stream_idle_seconds}s"
    for path in streaming_paths():
        yield f"        location = {path} {{"
        yield from _passing(s, "streams", s.max_streams)
        yield "            client_max_body_size 0;"
        for timeout in ("client_body_timeout", "grpc_read_timeout", "grpc_send_timeout"):
            yield f"            {timeout} {idle};"
        yield "        }"
    for kind, bound in kinds:
        yield from _answering(f"huren_{kind}_refused", _overloaded(kind, bound))
    yield from _answering(
        _TOO_LARGE,
        Overloaded(f"a request message is larger than {s.max_message_bytes:,} bytes"),
    )
    yield from _answering(
        _GONE, Unavailable("the gateway behind the front did not answer; retry later")
    )
    yield "    }"
    yield "}"


_TOO_LARGE = "huren_too_large"
_GONE = "huren_unavailable"


def _overloaded(kind: str, bound: int) -> Overloaded:
    """The gateway's own refusal (:mod:`gateway.server.admission`), said of the front's bound."""
    return Overloaded(f"the gateway is at its bound of {bound} {kind} in flight; retry later")


def _passing(s: FrontSettings, kind: str, bound: int) -> Iterator[str]:
    yield f"            limit_conn huren_{kind} {bound};"
    # Each location names every error page: nginx inherits none where a location has its own.
    yield f"            error_page 429 = @huren_{kind}_refused;"
    yield f"            error_page 413 = @{_TOO_LARGE};"
    yield f"            error_page 502 504 = @{_GONE};"
    yield f"            grpc_pass {s.upstream.scheme}://huren;"
    if s.upstream.tls:
        yield from (
            "            grpc_ssl_verify on;",
            f"            grpc_ssl_trusted_certificate {s.upstream_ca};",
            f"            grpc_ssl_name {s.upstream_name or s.upstream.address.host};",
            "            grpc_ssl_server_name on;",
            "            grpc_ssl_session_reuse on;",
            "            grpc_ssl_protocols TLSv1.2 TLSv1.3;",
        )


def _answering(name: str, error: Exception) -> Iterator[str]:
    yield f"        location @{name} {{"
    yield "            default_type application/grpc;"
    for header, value in refusal_headers(error):
        yield f'            add_header {header} "{value}" always;'
    yield "            return 200;"
    yield "        }"


_UNQUOTABLE = frozenset(b'%"\\$')
"""Bytes percent-encoded beside those outside printable ASCII: ``%`` (gRPC's escape) and what
nginx reads inside a quoted value (a variable, an escape, the quote)."""


def _percent(message: str) -> str:
    """``grpc-message``'s encoding (which gRPC clients decode), safe inside nginx's quotes."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b not in _UNQUOTABLE else f"%{b:02X}"
        for b in message.encode()
    )


def _invalid(message: str) -> RequestInvalid:
    return RequestInvalid(message)
