"""Generated gRPC and protobuf code for the syncd management plane (see protos/)."""
