"""A synchronous client of the Registry service (the CLI, the demo, scripts).

It sends :mod:`gateway.registry.commands` and returns model values (a
:class:`~gateway.registry.registrar.Change`, :mod:`~gateway.registry.views`, audit entries);
a failed call raises :class:`~gateway.errors.CallRefused` or :class:`~gateway.errors.CallFailed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.clients.tls import ChannelClient, TlsCredentials
from gateway.registry.audit import AuditEntry
from gateway.registry.commands import Command
from gateway.registry.registrar import Change
from gateway.registry.views import IssuerView, PolicyView, ReplicaView, TrustListView
from gateway.transfer import IssuancePage, IssuanceQuery
from gateway.trustlist import MAX_TRUST_LIST_MESSAGE_BYTES


def new_request_id() -> str:
    """A fresh client request id (keep it to retry safely)."""
    return str(uuid.uuid4())


class RegistryClient(ChannelClient):
    """A synchronous Registry client over (mutual) TLS, or plaintext for reading."""

    def __init__(
        self, target: str, credentials: TlsCredentials | None = None, *, timeout: float = 15.0
    ) -> None:
        # Its answers include the signed trust list, larger than gRPC's default 4 MiB.
        limit = ("grpc.max_receive_message_length", MAX_TRUST_LIST_MESSAGE_BYTES)
        super().__init__(target, credentials, (limit,))
        self._stub = pb_grpc.RegistryServiceStub(self._channel)
        self.timeout = timeout

    def submit(self, request_id: str, command: Command) -> Change:
        """Ask for one change; a retry with the same ``request_id`` and content answers the
        first result."""
        message = wire.request(request_id, command)
        method: Callable[..., Any] = getattr(self._stub, _METHODS[type(message)])
        with self.calls():
            answer = method(message, timeout=self.timeout)
        return wire.change_from(answer.change)

    def get_policy(self, destination: str) -> PolicyView:
        with self.calls():
            answer = self._stub.GetPolicy(
                pb.GetPolicyRequest(destination=destination), timeout=self.timeout
            )
        return wire.policy_from(answer.policy)

    def list_issuers(self, region: str = "") -> tuple[int, list[IssuerView]]:
        """The trust version, and every issuer (of ``region``, if given)."""
        with self.calls():
            answer = self._stub.ListIssuers(
                pb.ListIssuersRequest(region=region), timeout=self.timeout
            )
        return answer.trust_version, [wire.issuer_from(i) for i in answer.issuers]

    def get_issuer(self, issuer_id: str) -> IssuerView:
        with self.calls():
            answer = self._stub.GetIssuer(
                pb.GetIssuerRequest(issuer_id=issuer_id), timeout=self.timeout
            )
        return wire.issuer_from(answer.issuer)

    def trust_list(self) -> TrustListView:
        with self.calls():
            answer = self._stub.GetTrustList(pb.GetTrustListRequest(), timeout=self.timeout)
        return wire.trust_list_from(answer)

    def audit(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        with self.calls():
            answer = self._stub.ListAudit(
                pb.ListAuditRequest(after=after, limit=limit), timeout=self.timeout
            )
        return [wire.audit_entry_from(e) for e in answer.entries]

    def list_replicas(self) -> list[ReplicaView]:
        """The replicas pinned, and those removed (the hub administrator)."""
        with self.calls():
            answer = self._stub.ListReplicas(pb.ListReplicasRequest(), timeout=self.timeout)
        return [wire.replica_from(r) for r in answer.replicas]

    def attestations(self, query: IssuanceQuery) -> IssuancePage:
        """A page of the hub's issuance log, newest first (the hub administrator)."""
        with self.calls():
            answer = self._stub.ListAttestations(wire.issuance_request(query), timeout=self.timeout)
        return wire.issuance_page_from(answer)


_METHODS: dict[type, str] = {
    pb.RegisterIssuerRequest: "RegisterIssuer",
    pb.AddKeyRequest: "AddKey",
    pb.RetireKeyRequest: "RetireKey",
    pb.RevokeKeyRequest: "RevokeKey",
    pb.UpdateProfileRequest: "UpdateProfile",
    pb.SetRevocationsRequest: "SetRevocations",
    pb.SetPolicyRequest: "SetPolicy",
    pb.CreateRegionRequest: "CreateRegion",
    pb.CreateOperatorRequest: "CreateOperator",
    pb.RemoveOperatorRequest: "RemoveOperator",
    pb.RetireIssuerRequest: "RetireIssuer",
    pb.ReserveNameRequest: "ReserveName",
    pb.AddReplicaRequest: "AddReplica",
    pb.RemoveReplicaRequest: "RemoveReplica",
}
