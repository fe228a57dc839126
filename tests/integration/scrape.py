"""Reading a gateway's Prometheus endpoint over HTTP, as Prometheus does."""

from __future__ import annotations

import re
import urllib.request

_LABEL = re.compile(r'(\w+)="([^"]*)"')
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def sample(name: str, **labels: str) -> str:
    """The key of a sample in what :func:`scrape` returns."""
    if not labels:
        return name
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {sample(name, **labels): value}."""
    text = scrape_text(port)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples[sample(match.group(1), **labels)] = float(match.group(3))
    return samples


def verdicts(status: str, reason: str, colour: str, region: str = "330100") -> str:
    return sample(
        "huren_verdicts_total", status=status, reason=reason, colour=colour, region=region
    )


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body: bytes = response.read()
    return body.decode()
