"""Synthetic demo population: seeded, vectorised, with nothing real in it."""

from server.demo.files import FORMATS, SEGMENT_SCHEMA, Format, generate_to_directory, segment_shape, write_population
from server.demo.generator import DemoPopulation, Progress, generate_population

__all__ = [
    "FORMATS",
    "SEGMENT_SCHEMA",
    "DemoPopulation",
    "Format",
    "Progress",
    "generate_population",
    "generate_to_directory",
    "segment_shape",
    "write_population",
]
