"""Frame contracts: the column names that ingestion, identity, profiles and segments share.

They live below all of their users, so that none imports another to read a frame.
"""
