"""Utilities every room may use: atomic files, argument checks, versions, tables, logging.

Nothing here imports another part of larq_tentacle.
"""
