"""Encoders: anything that turns a tile (or a synthetic item) into one embedding vector."""
