"""Translation profiles: the declarative language that maps each region's codes to one form."""

from gateway.profiles.loader import ProfileError, load_profile
from gateway.profiles.model import EnvelopeFormat, EnvelopeSpec, FieldPath, PayloadFormat, Profile
from gateway.profiles.schema import profile_schema
from gateway.profiles.translate import Translated, decode_payload, translate

__all__ = [
    "EnvelopeFormat",
    "EnvelopeSpec",
    "FieldPath",
    "PayloadFormat",
    "Profile",
    "ProfileError",
    "Translated",
    "decode_payload",
    "load_profile",
    "profile_schema",
    "translate",
]
