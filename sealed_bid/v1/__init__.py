"""Generated from protos/sealed_bid/v1 by scripts/gen-protos. Do not edit."""
