"""The gRPC edge: the only part of the daemon that imports grpc and syncd_api."""

from __future__ import annotations
