"""Strict decoders and envelope codecs. Pure functions; every failure is a :class:`CodeRejected`.

Library defaults are permissive exactly where it matters (see ``../shared/docs/threats.md``):
these wrappers reject what the defaults silently accept.
"""
