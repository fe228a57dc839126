"""The checkpoint's web edge (issue 13): pages and a JSON API over the Verifier gRPC service."""

from gateway.web.app import CSP, WebLimits, checkpoint_app, start

__all__ = ["CSP", "WebLimits", "checkpoint_app", "start"]
