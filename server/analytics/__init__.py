"""Aggregates for analysts and BI tools: every count passes ``release`` (k floor, noise, budget)."""
