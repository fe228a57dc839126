"""What every simulated region shares: declarations, keys, the issuer HTTP service."""
