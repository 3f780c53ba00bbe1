"""Rectification (Art. 16) of a person's declared attributes."""
