"""The gRPC transport edge. The only package that imports the generated protobuf code."""
