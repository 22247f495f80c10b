"""Official grpcio stubs for interop tests, generated from proto/spooled.proto by scripts/gen_proto.py.

Do not edit; regenerate instead. The messages are not duplicated here: spooled_pb2 is the application's
spooled.transports.grpc.gen.spooled_pb2 (one registration of spooled.proto in the descriptor pool).
"""

from spooled.transports.grpc.gen import spooled_pb2

from . import spooled_pb2_grpc

__all__ = ["spooled_pb2", "spooled_pb2_grpc"]
