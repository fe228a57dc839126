"""The front's nginx configuration (gateway.server.front): what it bounds, and what it refuses to write."""

from __future__ import annotations

import base64
import re
from pathlib import PurePath

import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given
from hypothesis import strategies as st

from gateway._generated.huren.v1 import registry_pb2, verifier_pb2
from gateway.errors import Overloaded, RequestInvalid
from gateway.limits import Limits
from gateway.server.front import Address, FrontSettings, Upstream, _percent, refusal_headers, render
from gateway.server.status import refusal


def settings(**changes: object) -> FrontSettings:
    base: dict[str, object] = {
        "listen": Address.parse("127.0.0.1:50061", "listen"),
        "upstream": Upstream.parse("grpc://127.0.0.1:50051"),
    }
    return FrontSettings(**{**base, **changes})  # type: ignore[arg-type]


def locations(text: str) -> dict[str, str]:
    """Each location block of the configuration by its name."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"location (?:= )?(\S+) \{\n(.*?)\n        \}", text, re.S)
    }


def test_every_streaming_method_has_the_stream_bound_and_nothing_else_does():
    blocks = locations(render(settings(max_calls=7, max_streams=9)))
    streaming = {
        f"/{service.full_name}/{method.name}"
        for module in (verifier_pb2, registry_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.client_streaming or method.server_streaming
    }
    assert "/huren.v1.VerifierService/VerifyStream" in streaming
    assert "/huren.v1.RegistryService/WatchTrustList" in streaming
    for path in streaming:
        assert "limit_conn huren_streams 9;" in blocks[path]
        assert "client_max_body_size 0;" in blocks[path]
    for reflection in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):
        path = f"/{reflection}.ServerReflection/ServerReflectionInfo"
        assert "limit_conn huren_streams 9;" in blocks[path]  # a stream, as the gateway counts it
    assert "/huren.v1.VerifierService/Verify" not in blocks  # unary: the catch-all below
    assert "client_body_timeout 10s;" in blocks["/"]  # a stalled request frees its place
    assert "limit_conn huren_calls 7;" in blocks["/"]
    assert f"client_max_body_size {Limits().max_message_bytes + 5};" in blocks["/"]


def test_every_passing_location_names_every_error_page():
    """nginx inherits no error_page into a location that has one of its own."""
    for name, block in locations(render(settings())).items():
        if name.startswith("@"):
            continue
        assert "error_page 413 = @huren_too_large;" in block, name
        assert "error_page 502 504 = @huren_unavailable;" in block, name
        assert re.search(r"error_page 429 = @huren_(calls|streams)_refused;", block), name


def test_the_refusal_is_the_gateways_own_status_encoded_for_http2():
    error = Overloaded("the gateway is at its bound of 64 calls in flight; retry later")
    headers = dict(refusal_headers(error))
    code, message, details, reason = refusal(error)
    assert headers["grpc-status"] == "8" == str(code.value[0])
    assert headers["grpc-message"] == message  # printable: sent as it is
    padded = headers["grpc-status-details-bin"] + "=" * (
        -len(headers["grpc-status-details-bin"]) % 4
    )
    assert base64.b64decode(padded) == details
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.domain, info.reason) == ("huren.v1", "RESOURCE_EXHAUSTED")
    assert headers["huren-reason"] == reason == "RESOURCE_EXHAUSTED"
    text = render(settings())
    assert 'add_header grpc-message "the gateway is at its bound of 64 calls in flight;' in text


@given(st.text(max_size=60))
def test_grpc_message_is_percent_encoded_so_nginx_quotes_it_and_clients_decode_it(message):
    encoded = _percent(message)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert not set(encoded) & set('"\\$')
    decoded = re.sub(
        rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), encoded.encode()
    ).decode()
    assert decoded == message


@pytest.mark.parametrize(
    "text",
    ["", "50051", "host:", ":80", "a b:80", "host:65536", "host:-1", "h;x:80", "[::1:80", "x:8o"],
)
def test_an_address_nginx_would_misread_is_refused(text):
    with pytest.raises(RequestInvalid):
        Address.parse(text, "listen")


def test_addresses_and_upstreams_that_are_written_as_given():
    assert str(Address.parse("[::1]:8443", "listen")) == "[::1]:8443"
    assert str(Upstream.parse("grpcs://gateway.example:443")) == "grpcs://gateway.example:443"
    for bad in ("http://h:1", "grpc://h:0", "grpc:/h:1", "h:1"):
        with pytest.raises(RequestInvalid):
            Upstream.parse(bad)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"max_calls": 0}, "max_calls"),
        ({"max_streams": 100_001}, "max_streams"),
        ({"workers": 0}, "workers"),
        ({"stream_idle_seconds": 5}, "stream_idle_seconds"),
        ({"certificate": PurePath("/tls/gateway.pem")}, "go together"),
        ({"upstream": Upstream.parse("grpcs://gw.example:1")}, "needs the CA"),
        (
            {"upstream": Upstream.parse("grpcs://127.0.0.1:1"), "upstream_ca": PurePath("/c")},
            "DNS name only",
        ),
        ({"upstream_ca": PurePath("/tls/ca.pem")}, "means grpcs://"),
        (
            {"certificate": PurePath("/tls/my cert.pem"), "key": PurePath("/tls/k")},
            "must not hold",
        ),
        ({"key": PurePath("/k;"), "certificate": PurePath("/c")}, "must not hold"),
        ({"listen": Address("127.0.0.1", 0)}, "cannot pick a port"),
    ],
)
def test_settings_nginx_would_misread_are_refused_with_a_reason(changes, says):
    with pytest.raises(RequestInvalid, match=says):
        render(settings(**changes))


def test_tls_on_both_sides():
    text = render(
        settings(
            certificate=PurePath("/tls/gateway.pem"),
            key=PurePath("/tls/gateway.key"),
            upstream=Upstream.parse("grpcs://127.0.0.1:50051"),
            upstream_ca=PurePath("/tls/ca.pem"),
            upstream_name="localhost",
        )
    )
    assert "listen 127.0.0.1:50061 ssl http2;" in text
    assert "ssl_certificate /tls/gateway.pem;" in text
    assert "grpc_pass grpcs://huren;" in text
    assert "grpc_ssl_verify on;" in text
    assert "grpc_ssl_trusted_certificate /tls/ca.pem;" in text
    assert "grpc_ssl_name localhost;" in text
    plain = render(settings())
    assert "ssl" not in plain.replace("ssl_", "")  # plaintext both sides: no TLS at all
    assert "grpc_pass grpc://huren;" in plain
