"""The published aggregates as Parquet files, for BI tools that read files rather than SQL.

One file per view of ``audience_bi`` (``server.storage.bi_schema.BI_VIEWS``), with the view's
columns, so a tool reads the same thing either way. Each file is written beside its final name
and renamed over it, so a reader never sees half a file. The files hold released figures only
(suppressed below k, noisy), the same rows the SQL views show.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from server.analytics.publish import publish
from server.runtime import Runtime
from server.storage.bi_schema import BI_VIEWS, published_rows

__all__ = ["export_published", "write_atomically"]


def write_atomically(frame: pl.DataFrame, target: Path) -> None:
    """``target`` is the old file or the whole new one, never a part (a rename within its directory)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.write_parquet(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_published(runtime: Runtime, directory: Path) -> list[Path]:
    """Write ``<view>.parquet`` for every view into ``directory`` (created if missing), publishing
    first when nothing is published yet. Returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    with runtime.sessions() as session:
        published = published_rows(session)
    if published.is_empty():
        publish(runtime)
        with runtime.sessions() as session:
            published = published_rows(session)
    written = []
    for view in BI_VIEWS:
        target = directory / f"{view.name}.parquet"
        write_atomically(view.frame(published), target)
        written.append(target)
    return written
