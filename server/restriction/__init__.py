"""Restriction of processing (Art. 18): the data is kept, nothing uses it until the restriction is lifted."""
