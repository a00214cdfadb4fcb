"""Tensor parallelism: process groups, sharded parameters, the worker processes."""
