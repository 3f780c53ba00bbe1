"""Topic taxonomy: the interests profiles are built from."""

from server.taxonomy.taxonomy import (
    TOPIC_SCHEMA,
    Taxonomy,
    TaxonomyError,
    TopicSplit,
    UnknownTopicError,
    load_taxonomy,
)

__all__ = ["TOPIC_SCHEMA", "Taxonomy", "TaxonomyError", "TopicSplit", "UnknownTopicError", "load_taxonomy"]
