"""syncctl: the operator client."""
