"""Clients of a huren gateway: the Verifier, the Registry, and the TLS they use. They take and
return the project's model types and raise the project's errors (never ``grpc.RpcError``)."""

from gateway.clients.registry import RegistryClient, new_request_id
from gateway.clients.tls import TlsCredentials, operator_files
from gateway.clients.verifier import GatewayClient

__all__ = ["GatewayClient", "RegistryClient", "TlsCredentials", "new_request_id", "operator_files"]
