"""Replica processes: one model per process, behind a Unix socket speaking `serving.protocol.frames`."""
