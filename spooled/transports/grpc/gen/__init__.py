"""Generated from proto/spooled.proto by scripts/gen_proto.py -- do not edit; regenerate instead.

spooled_pb2: the protobuf messages (the only copy in the process); spooled_grpc: grpclib service bases and stubs.
"""
