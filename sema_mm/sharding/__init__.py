"""Sharded models: the local shards of FSDP1 / FSDP2 models and the FSDP2
strategy."""
