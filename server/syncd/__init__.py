"""syncd: the management daemon."""
