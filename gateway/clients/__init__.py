"""Clients: of a huren gateway (the Verifier, the Registry, and the TLS they use), which take and
return the project's model types and raise the project's errors (never ``grpc.RpcError``); and
of online issuers (:mod:`gateway.clients.online`), which the gateway itself asks."""

from gateway.clients.online import OnlineClient
from gateway.clients.registry import RegistryClient, new_request_id
from gateway.clients.tls import TlsCredentials, operator_files
from gateway.clients.verifier import GatewayClient

__all__ = [
    "GatewayClient",
    "OnlineClient",
    "RegistryClient",
    "TlsCredentials",
    "new_request_id",
    "operator_files",
]
