"""Retention: data past its time-to-live is deleted in bulk (docs/retention.md).

``policy`` (how long, the cutoffs), ``events``, ``anonymous`` and ``receipts`` (one category each,
one partition of subjects at a time), ``purge`` (everything in the caller's unit of work),
``run`` (partition by partition, each committed on its own: the CLI and the schedule) and
``schedule`` (the server's background run). Nothing is imported here, so that ``server.runtime``
can import ``policy`` without the rest.
"""
