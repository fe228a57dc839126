"""``--transfer-peer CODE=URL``: what a region accepts as a place its travellers may carry their
status to (regions/common/outbound.py)."""

from __future__ import annotations

import pytest

from regions.common.outbound import MAX_PEERS, parse_peers


def test_peers_are_read_by_region_code_without_a_trailing_slash():
    peers = parse_peers(["820000=http://127.0.0.1:8082/", "440000=https://gd.example:443"])
    assert peers == {"820000": "http://127.0.0.1:8082", "440000": "https://gd.example:443"}


@pytest.mark.parametrize(
    "bad",
    [
        "820000",  # no URL
        "82000=http://127.0.0.1:1",  # not a region code
        "820000=ftp://127.0.0.1:1",  # not HTTP
        "820000=http://host/path",  # a base URL only: the route is the region's own
        "820000=http://a b",
    ],
)
def test_a_bad_peer_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="82000"):
        parse_peers([bad])


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8082", "http://127.8.9.1:1", "http://localhost:8082", "http://[::1]:1"],
)
def test_plain_http_is_accepted_to_this_host_only(url):
    assert parse_peers([f"820000={url}"]) == {"820000": url}


@pytest.mark.parametrize(
    "url", ["http://macau-issuer:8082", "http://10.0.0.5:8082", "http://[2001:db8::1]:80"]
)
def test_plain_http_elsewhere_is_refused_as_the_identity_number_would_cross_in_clear(url):
    with pytest.raises(ValueError, match="identity number") as refused:
        parse_peers([f"820000={url}"])
    assert "use https://" in str(refused.value)
    assert parse_peers([f"820000={url.replace('http://', 'https://')}"])  # https: accepted


def test_the_number_of_peers_is_bounded():
    many = [f"{110000 + i * 10000}=http://127.0.0.1:{1000 + i}" for i in range(MAX_PEERS + 1)]
    with pytest.raises(ValueError, match=str(MAX_PEERS)):
        parse_peers(many)
