"""gRPC adapters: servicers translate messages to service calls and errors to statuses.
They hold no business rule."""
