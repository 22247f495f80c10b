"""The gRPC transport (grpc.md): grpclib handlers in the one trio_asyncio loop; `server.serve` starts it."""
