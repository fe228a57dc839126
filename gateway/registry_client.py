"""Calling the Registry service: request builders and a synchronous client (CLI, demo).

Asynchronous callers (tests, services) use the same builders with a ``grpc.aio`` stub.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

import grpc

from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.registry import OnlineEndpoint
from gateway.registry.admission import KeyOffer
from gateway.server.convert import timestamp


def new_request_id() -> str:
    """A fresh client request id (keep it to retry safely)."""
    return str(uuid.uuid4())


def operator_files(directory: Path, name: str) -> tuple[Path, Path]:
    """Operator ``name``'s certificate and private key in a ``huren pki init`` folder (names
    may hold dots, so these are not suffix replacements)."""
    folder = directory / "operators"
    return folder / f"{name}.pem", folder / f"{name}.key"


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """What a client needs for TLS: the CA it trusts and, for mutual TLS, its certificate."""

    ca: bytes
    certificate: bytes | None = None
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_pki(cls, directory: Path, name: str | None = None) -> TlsCredentials:
        """The CA of ``huren pki init DIR``, and operator ``name``'s certificate and key."""
        ca = (directory / "ca.pem").read_bytes()
        if name is None:
            return cls(ca)
        certificate, key = operator_files(directory, name)
        return cls(ca, certificate.read_bytes(), key.read_bytes())

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.certificate
        )


def key_submission(offer: KeyOffer) -> pb.KeySubmission:
    return pb.KeySubmission(
        kid=offer.kid,
        key=offer.key,
        algorithm=offer.algorithm,
        proof=offer.proof,
        not_before=timestamp(offer.not_before) if offer.not_before else None,
        not_after=timestamp(offer.not_after) if offer.not_after else None,
    )


def register_issuer_request(
    request_id: str,
    issuer_id: str,
    region: str,
    name: str,
    profile_toml: str,
    keys: list[KeyOffer],
    online: OnlineEndpoint | None = None,
    pseudonym_key: bytes | None = None,
    code_name: str | None = None,
) -> pb.RegisterIssuerRequest:
    request = pb.RegisterIssuerRequest(
        request_id=request_id,
        issuer_id=issuer_id,
        region=region,
        name=name,
        profile_toml=profile_toml,
        keys=[key_submission(k) for k in keys],
        pseudonym_key=pseudonym_key or b"",
        code_name=code_name or "",
    )
    if online is not None:
        request.online.CopyFrom(
            pb.OnlineEndpoint(
                code_prefix=online.code_prefix,
                verify_url=online.verify_url,
                client_id=online.client_id,
                client_secret=online.client_secret,
            )
        )
    return request


class RegistryClient:
    """A synchronous Registry client over (mutual) TLS, or plaintext for reading."""

    def __init__(
        self, target: str, credentials: TlsCredentials | None = None, *, timeout: float = 15.0
    ) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, credentials.channel())
        self.stub = pb_grpc.RegistryStub(self._channel)
        self.timeout = timeout

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._channel.close()

    def register_issuer(self, request: pb.RegisterIssuerRequest) -> pb.RegistryChange:
        return self.stub.RegisterIssuer(request, timeout=self.timeout)

    def add_key(self, request_id: str, issuer_id: str, offer: KeyOffer) -> pb.RegistryChange:
        request = pb.AddKeyRequest(
            request_id=request_id, issuer_id=issuer_id, key=key_submission(offer)
        )
        return self.stub.AddKey(request, timeout=self.timeout)

    def retire_key(
        self, request_id: str, issuer_id: str, kid: str, at: datetime | None = None
    ) -> pb.RegistryChange:
        request = pb.RetireKeyRequest(
            request_id=request_id,
            issuer_id=issuer_id,
            kid=kid,
            retire_at=timestamp(at) if at else None,
        )
        return self.stub.RetireKey(request, timeout=self.timeout)

    def revoke_key(
        self, request_id: str, issuer_id: str, kid: str, reason: str = ""
    ) -> pb.RegistryChange:
        request = pb.RevokeKeyRequest(
            request_id=request_id, issuer_id=issuer_id, kid=kid, reason=reason
        )
        return self.stub.RevokeKey(request, timeout=self.timeout)

    def update_profile(
        self, request_id: str, issuer_id: str, profile_toml: str
    ) -> pb.RegistryChange:
        request = pb.UpdateProfileRequest(
            request_id=request_id, issuer_id=issuer_id, profile_toml=profile_toml
        )
        return self.stub.UpdateProfile(request, timeout=self.timeout)

    def create_region(self, request_id: str, region: str, name: str) -> pb.RegistryChange:
        request = pb.CreateRegionRequest(request_id=request_id, region=region, name=name)
        return self.stub.CreateRegion(request, timeout=self.timeout)

    def create_operator(
        self, request_id: str, name: str, region: str | None, certificate_pem: bytes
    ) -> pb.RegistryChange:
        request = pb.CreateOperatorRequest(
            request_id=request_id, name=name, region=region or "", certificate_pem=certificate_pem
        )
        return self.stub.CreateOperator(request, timeout=self.timeout)

    def remove_operator(self, request_id: str, name: str) -> pb.RegistryChange:
        request = pb.RemoveOperatorRequest(request_id=request_id, name=name)
        return self.stub.RemoveOperator(request, timeout=self.timeout)

    def set_revocations(
        self, request_id: str, issuer_id: str, kid: str, revocation_list: bytes
    ) -> pb.RegistryChange:
        request = pb.SetRevocationsRequest(
            request_id=request_id, issuer_id=issuer_id, kid=kid, revocation_list=revocation_list
        )
        return self.stub.SetRevocations(request, timeout=self.timeout)

    def set_policy(self, request_id: str, policy_toml: str) -> pb.RegistryChange:
        request = pb.SetPolicyRequest(request_id=request_id, policy_toml=policy_toml)
        return self.stub.SetPolicy(request, timeout=self.timeout)

    def get_policy(self, destination: str) -> pb.PolicyRecord:
        request = pb.GetPolicyRequest(destination=destination)
        return self.stub.GetPolicy(request, timeout=self.timeout)

    def list_issuers(self, region: str = "") -> pb.ListIssuersResponse:
        return self.stub.ListIssuers(pb.ListIssuersRequest(region=region), timeout=self.timeout)

    def get_issuer(self, issuer_id: str) -> pb.IssuerRecord:
        return self.stub.GetIssuer(pb.GetIssuerRequest(issuer_id=issuer_id), timeout=self.timeout)

    def trust_list(self) -> pb.TrustList:
        return self.stub.GetTrustList(pb.GetTrustListRequest(), timeout=self.timeout)

    def audit(self, after: int = 0, limit: int = 1000) -> pb.ListAuditResponse:
        request = pb.ListAuditRequest(after=after, limit=limit)
        return self.stub.ListAudit(request, timeout=self.timeout)
