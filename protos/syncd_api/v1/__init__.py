"""syncd.v1: generated from management.proto by `make proto`; do not edit the *_pb2 files."""
