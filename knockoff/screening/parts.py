"""Crash-safe, resumable screening output.

Rows go to numbered Parquet parts in a folder beside the output (`.results.parquet.parts/`).
A part becomes visible only by an atomic rename once it is complete, so after a crash or a
kill the folder holds whole parts covering rows 0..N-1 of the input, in input order, and
nothing else counts. `--resume` checks that the run is the same (inputs, model, gallery),
checks that the first N inputs are still the photos those rows describe, skips them, and
appends. A finished run merges the parts into the output file (any format), then removes the
folder. Memory stays flat: rows stream through one part and one row group at a time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knockoff.data.records import ImageRecord
from knockoff.screening.duplicates import DuplicateOptions, Reuse, find_reuse
from knockoff.screening.results import RESULT_SCHEMA, ResultWriter

RUN_FILE = "run.json"
PART_GLOB = "part-*.parquet"
# Parts also keep each row's embedding (float16), for finding reused photos across the whole
# run when it finishes; the merged output leaves it out.
PART_SCHEMA = RESULT_SCHEMA.append(pa.field("embedding", pa.list_(pa.float16())))
# Rows held before they are written as one row group. A screening batch (32 rows) written as
# its own row group costs 0.07 ms of CPU per row in Parquet's per-group overhead, 1,024 rows
# 0.016; holding them loses nothing, since a part counts only once it is committed whole.
ROW_GROUP_ROWS = 1024


class ResumeError(ValueError):
    """An interrupted run cannot be resumed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class MergeSummary:
    rows: int
    flagged: int
    failed: int


def parts_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.parts")


class PartWriter:
    """Append result rows as committed parts; `finish()` merges them into `out`."""

    def __init__(self, out: Path, run: dict[str, object], resume: bool = False, rows_per_part: int = 4096,
                 metadata: dict[str, str] | None = None, duplicates: DuplicateOptions | None = None) -> None:
        self.out = Path(out)
        self.dir = parts_dir(self.out)
        self.rows_per_part = rows_per_part
        self.metadata = metadata or {}
        self.duplicates = duplicates
        self._schema = PART_SCHEMA.with_metadata({f"knockoff.{k}": v for k, v in self.metadata.items()})
        self._writer: pq.ParquetWriter | None = None
        self._held: list[pa.Table] = []  # rows of this part not yet written (under ROW_GROUP_ROWS)
        self._held_rows = 0
        self._part_rows = 0
        if self.dir.exists():
            if not resume:
                raise ResumeError(
                    f"an interrupted run left {self.dir}: pass --resume to finish it, "
                    f"or delete that folder to start over"
                )
            _check_same_run(self.dir, run)
            for leftover in self.dir.glob("*.tmp"):
                leftover.unlink()  # a part that was being written when the run stopped
        else:
            self.dir.mkdir(parents=True)
            (self.dir / RUN_FILE).write_text(json.dumps(run, indent=2))
        self.parts = sorted(self.dir.glob(PART_GLOB))
        self.done = _check_contiguous(self.parts)
        self.rows = self.done

    def skip_done(self, records: Iterable[ImageRecord]) -> Iterator[ImageRecord]:
        """The records not yet screened, after checking that the screened ones are unchanged."""
        record_iter = iter(records)
        position = 0
        for part in self.parts:
            for batch in pq.ParquetFile(part).iter_batches(columns=["path"], batch_size=4096):
                for stored in batch.column(0).to_pylist():
                    record = next(record_iter, None)
                    if record is None or record.path != stored:
                        now = "the end of the input" if record is None else record.path
                        raise ResumeError(
                            f"the input changed since the interrupted run: row {position} was {stored}, "
                            f"now {now}; delete {self.dir} to start over"
                        )
                    position += 1
        yield from record_iter

    def write(self, rows: list[dict] | pa.Table) -> None:
        """Append rows (dicts, or a table of PART_SCHEMA) after the rows already written."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=self._schema)
        table = table.cast(self._schema)
        if self.duplicates is None:  # nothing will search the embeddings: keep the parts small
            field = self._schema.field("embedding")
            table = table.set_column(self._schema.get_field_index("embedding"), field, pa.nulls(table.num_rows, field.type))
        if table.num_rows == 0:
            return
        self._held.append(table)
        self._held_rows += table.num_rows
        self._part_rows += table.num_rows
        self.rows += table.num_rows
        if self._part_rows >= self.rows_per_part:
            self._commit()
        elif self._held_rows >= ROW_GROUP_ROWS:
            self._write_held()

    def finish(self) -> MergeSummary:
        """Commit the last part, find reused photos across the run, merge every part into the
        output file, remove the folder."""
        self._commit()
        self.parts = sorted(self.dir.glob(PART_GLOB))
        reuse = find_reuse(self.parts, self.duplicates) if self.duplicates else None
        summary = merge_parts(self.parts, self.out, self.metadata, reuse)
        shutil.rmtree(self.dir)
        return summary

    def close(self) -> None:
        """Stop without finishing (an error or an interrupt): committed parts stay for --resume."""
        self._held, self._held_rows = [], 0
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass  # the half-written part goes either way; the committed ones stay
            finally:
                self._writer = None
                self._tmp_path().unlink(missing_ok=True)
        if self.dir.exists() and not any(self.dir.glob(PART_GLOB)):
            shutil.rmtree(self.dir)  # nothing was committed: nothing to resume

    def _tmp_path(self) -> Path:
        return self.dir / f"part-{self.rows - self._part_rows:012d}.parquet.tmp"

    def _write_held(self) -> None:
        if not self._held:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp_path(), self._schema, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._held))
        self._held, self._held_rows = [], 0

    def _commit(self) -> None:
        self._write_held()
        if self._writer is None:
            return
        tmp = self._tmp_path()
        self._writer.close()
        self._writer = None
        tmp.replace(tmp.with_suffix(""))  # part-<first row>.parquet: visible only when whole
        self._part_rows = 0


def merge_parts(parts: list[Path], out: Path, metadata: dict[str, str], reuse: Reuse | None = None,
                batch_rows: int = 4096) -> MergeSummary:
    writer = ResultWriter(out, metadata=metadata)
    rows = flagged = failed = 0
    try:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(columns=RESULT_SCHEMA.names, batch_size=batch_rows):
                if reuse is not None:
                    batch = _with_reuse(batch, reuse, rows)
                writer.write_batch(batch)
                rows += batch.num_rows
                flagged += int(pc.sum(pc.fill_null(batch.column("flagged"), False)).as_py() or 0)
                failed += batch.num_rows - batch.column("error").null_count
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return MergeSummary(rows, flagged, failed)


def _with_reuse(batch: pa.RecordBatch, reuse: Reuse, first_row: int) -> pa.RecordBatch:
    if batch.num_rows == 0:
        return batch
    table = pa.Table.from_batches([batch])
    groups = pa.array(reuse.group_of(first_row, batch.num_rows), RESULT_SCHEMA.field("duplicate_group").type)
    table = table.set_column(table.schema.get_field_index("duplicate_group"), "duplicate_group", groups)
    return table.combine_chunks().to_batches()[0]


def _check_same_run(directory: Path, run: dict[str, object]) -> None:
    try:
        before = json.loads((directory / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ResumeError(f"{directory} does not describe a screening run ({error}); delete it to start over") from None
    changed = [f"{key}: {before.get(key)!r} then, {value!r} now" for key, value in run.items() if before.get(key) != value]
    if changed:
        raise ResumeError(
            "cannot resume: the interrupted run differs (" + "; ".join(changed) + f"); delete {directory} to start over"
        )


def _check_contiguous(parts: list[Path]) -> int:
    """Rows covered by the committed parts, which must follow each other with no gap."""
    expected = 0
    for part in parts:
        first = int(part.name.removeprefix("part-").removesuffix(".parquet"))
        if first != expected:
            raise ResumeError(f"{part} starts at row {first}, expected {expected}: the parts folder is damaged")
        expected += pq.ParquetFile(part).metadata.num_rows
    return expected
