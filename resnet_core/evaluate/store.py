"""An evaluation on disk: its rows as a Parquet data set, what the run was asked, and JSON written whole or not at all.

``DIR/rows/<network>/part-00000.parquet, ...``: one series of part files per network, each written under a hidden
temporary name and then renamed, so a reader (``pyarrow.dataset`` skips hidden files) never sees half a part, and
an interrupted run loses only the rows it had not written yet. Every part carries a ``network`` column, so
``pyarrow.dataset.dataset(DIR / "rows")`` reads all networks as one table without a partitioning scheme.
``DIR/run.json`` holds the data and the columns asked for: a run into a DIR that holds another is refused, so rows
of two data sets (or of two sets of columns) never mix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

__all__ = [
    "PLOTS",
    "ROWS",
    "ROWS_PER_PART",
    "SUMMARY",
    "PartWriter",
    "claim",
    "file_name",
    "row_schema",
    "write_json",
    "write_part",
    "written_paths",
]

ROWS, SUMMARY, PLOTS, RUN = "rows", "summary", "plots", "run.json"
NETWORK_RUN = "_network.json"  # in a network's rows folder (pyarrow's data sets skip names that begin with "_")
ROWS_PER_PART = 5000  # what an interruption can cost, and what a part holds in memory before it is written
COLUMN_TYPES = {
    float: pa.float32(),
    int: pa.int64(),
    bool: pa.bool_(),
    str: pa.string(),
}  # a metric's column, as stored
TOPK = pa.list_(pa.struct([("index", pa.int32()), ("label", pa.string()), ("probability", pa.float32())]))


def row_schema(columns: Mapping[str, type] | None = None) -> pa.Schema:
    """The columns of :class:`~resnet_core.evaluate.batch.BatchEvaluator`'s rows, as Parquet stores them, with the
    metrics' ``columns`` (name: ``float``, stored as float32, ``int``, ``bool`` or ``str``) at the end."""
    return pa.schema(
        [
            ("network", pa.string()),
            ("path", pa.string()),
            ("label", pa.string()),
            ("label_index", pa.int32()),
            ("topk", TOPK),
            ("correct", pa.bool_()),
            ("residual_ratios", pa.list_(pa.float32())),
            ("error", pa.string()),
            *((name, COLUMN_TYPES[kind]) for name, kind in (columns or {}).items()),
        ]
    )


def file_name(network: str) -> str:
    """A network's name as a file or folder name (a checkpoint's name holds spaces and brackets)."""
    return re.sub(r"[^\w.-]+", "_", network).strip("_") or "network"


def written_paths(folder: Path) -> set[str]:
    """The paths a network's rows already hold: what a resumed run skips."""
    if not any(folder.glob("part-*.parquet")):  # none yet (the folder may hold its network's settings alone)
        return set()
    return set(ds.dataset(folder, format="parquet").to_table(columns=["path"]).column("path").to_pylist())


def claim(out: Path, settings: Mapping[str, object], file: str = RUN) -> None:
    """Make ``out`` this run's: record ``settings`` there (in ``file``), or check that a run already there had the
    same."""
    path = out / file
    settings = json.loads(json.dumps(dict(settings)))  # as it is read back: tuples are lists there
    if path.is_file():
        before = json.loads(path.read_text())
        differ = {key: before.get(key) for key, value in settings.items() if before.get(key) != value}
        if differ:
            held = ", ".join(f"{key}={value!r}" for key, value in differ.items())
            raise ValueError(f"{out} holds a run with other settings ({held}): resume it with those, or choose another")
        return
    write_json(path, dict(settings))


def write_json(path: Path, payload: object) -> None:
    """Indented JSON, with a list of numbers on one line (a confusion matrix reads as a table), written whole."""
    text = re.sub(  # a raw newline is never inside a JSON string: only lists the indenting spread out are joined
        r"\[\n\s*([-+\deE.,\s]+?)\n\s*\]",
        lambda match: "[" + ", ".join(value.strip() for value in match[1].split(",")) + "]",
        json.dumps(payload, indent=2),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)


def write_part(table: pa.Table, path: Path) -> None:
    """``table`` as the Parquet file ``path``, which appears whole or not at all."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    temporary.replace(path)


class PartWriter:
    """Rows of one network, kept until ``rows_per_part`` are in hand, then written as the next part file."""

    def __init__(self, folder: Path, schema: pa.Schema, rows_per_part: int = ROWS_PER_PART) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".part-*.tmp"):  # left by a run that was killed while writing
            stale.unlink()
        numbers = [int(match[1]) for p in folder.iterdir() if (match := re.fullmatch(r"part-(\d+)\.parquet", p.name))]
        self.folder, self.schema, self.rows_per_part = folder, schema, rows_per_part
        self.next = max(numbers, default=-1) + 1
        self.buffer: dict[str, list] = {name: [] for name in schema.names}

    def add(self, rows: Mapping[str, Sequence]) -> None:
        for name, values in self.buffer.items():
            values.extend(rows[name])
        while len(self.buffer["path"]) >= self.rows_per_part:
            self._write(self.rows_per_part)

    def flush(self) -> None:
        if self.buffer["path"]:
            self._write(len(self.buffer["path"]))

    def _write(self, count: int) -> None:
        table = pa.table({name: values[:count] for name, values in self.buffer.items()}, schema=self.schema)
        write_part(table, self.folder / f"part-{self.next:05d}.parquet")
        for values in self.buffer.values():
            del values[:count]
        self.next += 1
