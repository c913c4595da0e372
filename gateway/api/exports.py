"""Exports a clerk opens in a spreadsheet: words instead of codes, times in the gateway's zone (issue 11).

Entries and the audit log, as CSV (UTF-8 with a BOM so that Excel reads Chinese right, CRLF) or XLSX.
Both formats have the same columns and words (gateway.messages). CSV is streamed as it is read; XLSX
cannot be (a zip whose directory comes last), so it is written to an unnamed temporary file in the
data folder, then streamed from it. Each export holds one of `api.max_exports` slots and writes one
audit row: started before the first row is read, completed with the rows sent, or marked aborted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import unicodedata
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import IO, Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from gateway.api.auth import Caller
from gateway.api.errors import ApiError
from gateway.api.limits import Slots, slots
from gateway.clock import named_zone
from gateway.messages import word
from gateway.store.audit import complete_row, start_row
from gateway.store.queries import safe_cell

log = logging.getLogger(__name__)

ENTRY_COLUMNS = ("time", "door", "method", "decision", "reason", "tenant_id", "name", "room", "card_number",
                 "camera", "face_distance", "entry_id")  # fmt: skip
AUDIT_COLUMNS = ("time", "actor", "action", "route", "rows", "details", "audit_id")
XLSX_MAX_ROWS = 1_000_000  # Excel shows 1,048,576 rows; a round number below it, header included
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
# Starting widths in characters (a CJK character counts two); a wider header widens its column.
_WIDTHS = {"time": 20, "door": 12, "method": 12, "decision": 8, "reason": 18, "tenant_id": 14, "name": 16,
           "room": 8, "card_number": 12, "camera": 12, "face_distance": 10, "entry_id": 28, "actor": 16,
           "action": 18, "route": 28, "rows": 8, "details": 60, "audit_id": 10}  # fmt: skip
_CSV_BATCH = 2000  # rows per chunk sent


@dataclass(frozen=True)
class Wording:
    """How rows read in one language and zone."""

    lang: str
    zone_name: str
    zone: tzinfo

    @classmethod
    def of(cls, request: Request, lang: str) -> Wording:
        return cls(lang, *named_zone(request.app.state.ctx.cfg))

    def header(self, columns: Iterable[str]) -> list[str]:
        # The zone goes with the time column's name: a clerk in another zone must not misread it.
        words = [word(self.lang, f"column.{c}") for c in columns]
        return [f"{w} ({self.zone_name})" if c == "time" else w for c, w in zip(columns, words, strict=True)]

    def local(self, rfc3339: str | None) -> datetime | None:
        """A stored UTC time as the naive local time a spreadsheet shows."""
        if rfc3339 is None:
            return None
        return datetime.fromisoformat(rfc3339).astimezone(self.zone).replace(tzinfo=None, microsecond=0)

    def code(self, family: str, value: str | None) -> str | None:
        return None if value is None else word(self.lang, f"{family}.{value}", value)

    def entry(self, item: dict[str, Any]) -> list[Any]:
        return [self.local(item["ts"]), item["door"], self.code("method", item["method"]),
                self.code("decision", item["decision"]), self.code("reason", item["reason"]), item["tenant_id"],
                item.get("tenant_name"), item.get("room"), item["card_number"], item["camera"],
                item["face_distance"], item["id"]]  # fmt: skip

    def audit(self, item: dict[str, Any]) -> list[Any]:
        details = json.dumps(item["details"], ensure_ascii=False, sort_keys=True) if item["details"] else None
        return [self.local(item["ts"]), item["actor"], self.code("audit", item["action"]), item["route"],
                item["rows"], details, item["id"]]  # fmt: skip


@dataclass(frozen=True)
class Export:
    """One export: what it is audited as, and how its rows are read (in the reader's transaction)."""

    action: str  # audit action, e.g. "entries.export"
    details: dict[str, Any]  # the audit row's details: filters, format, language, address
    name: str  # file name stem and sheet ("sheet.<name>" in the catalogues)
    columns: tuple[str, ...]
    wording: Wording
    rows: Callable[[Session], Iterator[list[Any]]]  # checks the filter at once (ValueError)
    count: Callable[[Session, int], int]  # how many rows match, counting to at most cap + 1


def _audit_start(request: Request, caller: Caller, export: Export) -> int:
    with request.app.state.ctx.sessions() as w, w.begin():
        return start_row(w, caller.name, export.action, {**export.details, "state": "started"},
                         route=request.url.path)  # fmt: skip


def _audit_end(request: Request, row_id: int | None, rows: int, completed: bool) -> None:
    if row_id is None:
        return
    try:
        outcome = {"state": "completed" if completed else "aborted", "completed": completed}
        with request.app.state.ctx.sessions() as w, w.begin():
            complete_row(w, row_id, rows, outcome)
    except Exception:  # the caller's slot must still come back
        log.exception("could not complete audit row %s of an export", row_id)


def _file_name(export: Export, ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{export.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{ext}"'}


# --- CSV ----------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return safe_cell(value)  # the formula-injection guard (OWASP)


def csv_response(request: Request, caller: Caller, export: Export) -> StreamingResponse:
    """The export as streamed CSV. A bad filter is a 422 before anything is sent or audited."""
    slot = slots(request, "export")
    slot.take()
    body = _csv_stream(request, caller, export, slot)
    try:
        next(body)  # up to the priming yield: filter checked, audit row written, nothing sent yet
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return ClosingStream(body, media_type=CSV_TYPE, headers=_file_name(export, "csv"))


def _csv_stream(request: Request, caller: Caller, export: Export, slot: Slots) -> Generator[bytes, None, None]:
    """Owns the slot and the audit row from its first step; both are settled in `finally`, however the
    stream ends (finished, client gone: ClosingStream closes it, never sent: the garbage collector)."""
    row_id: int | None = None
    sent, completed = 0, False
    try:
        # Its own connection: Starlette may run each step of this generator on another thread.
        with Session(request.app.state.ctx.reader_engine) as s:
            rows = export.rows(s)
            row_id = _audit_start(request, caller, export)
            yield b""  # the priming step ends here; the route never sends this
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            out.write("\ufeff")  # the BOM: Excel reads the file as UTF-8 only with it
            writer.writerow(export.wording.header(export.columns))
            pending = 0
            for row in rows:
                writer.writerow([_csv_value(v) for v in row])
                pending += 1
                if pending >= _CSV_BATCH:
                    yield out.getvalue().encode()
                    sent += pending  # counted once the server has taken the chunk
                    out.seek(0)
                    out.truncate()
                    pending = 0
            yield out.getvalue().encode()
            sent += pending
        completed = True
    finally:
        try:
            _audit_end(request, row_id, sent, completed)
        finally:
            slot.release()


class ClosingStream(StreamingResponse):
    """Closes its generator as soon as the response ends, however it ends.

    Starlette only abandons a sync generator when the client goes away; it is closed whenever the
    garbage collector gets to it (a cycle through the cancellation can keep it for minutes), and with
    it the export slot, the audit row's count and the temporary file.
    """

    def __init__(self, body: Generator[bytes, None, None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._source = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # also when the server cancels us on shutdown
                await anyio.to_thread.run_sync(self._source.close)


# --- XLSX ---------------------------------------------------------------------------


def xlsx_response(request: Request, caller: Caller, export: Export) -> StreamingResponse:
    """The export as an XLSX file. Call it from a worker thread (a sync route): it writes the file first."""
    slot = slots(request, "export")
    slot.take()
    ctx = request.app.state.ctx
    row_id: int | None = None
    written, completed = 0, False
    target: IO[bytes] | None = None
    try:
        target = tempfile.TemporaryFile(dir=ctx.cfg.data_dir)  # unnamed: gone with the process, whatever happens
        with Session(ctx.reader_engine) as s:  # one read transaction: the count and the rows agree
            try:
                matching = export.count(s, XLSX_MAX_ROWS)
            except ValueError as exc:
                raise ApiError(422, "invalid_request", str(exc)) from None
            if matching > XLSX_MAX_ROWS:
                raise ApiError(422, "too_many_rows", f"more than {XLSX_MAX_ROWS:,} rows match, more than a "
                               "spreadsheet holds; narrow the search or export CSV")  # fmt: skip
            rows = export.rows(s)
            row_id = _audit_start(request, caller, export)
            wording = export.wording
            written = write_xlsx(target, word(wording.lang, f"sheet.{export.name}", export.name),
                                 wording.header(export.columns), [_WIDTHS.get(c, 12) for c in export.columns],
                                 rows)  # fmt: skip
        completed = True
    except BaseException:
        if target is not None:
            target.close()
        raise
    finally:
        try:
            _audit_end(request, row_id, written, completed)
        finally:
            slot.release()
    size = target.seek(0, io.SEEK_END)
    target.seek(0)
    headers = _file_name(export, "xlsx") | {"Content-Length": str(size)}
    return ClosingStream(_chunks(target), media_type=XLSX_TYPE, headers=headers)


def _chunks(f: IO[bytes]) -> Generator[bytes, None, None]:
    with f:
        while chunk := f.read(256 * 1024):
            yield chunk


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def write_xlsx(target: IO[bytes], title: str, header: list[str], widths: list[int], rows: Iterable[list[Any]]) -> int:
    """One sheet: a bold frozen header, set widths, datetimes as Excel times. Returns the rows written."""
    from openpyxl import Workbook  # only where a spreadsheet is made
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(_sheet_title(title))
    sheet.freeze_panes = "A2"
    for i, (name, width) in enumerate(zip(header, widths, strict=True), start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(width, _display_width(name) + 2)
    bold = Font(bold=True)
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, name)
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)

    def cell_of(value: Any) -> Any:
        if isinstance(value, datetime):
            cell = WriteOnlyCell(sheet, value)
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
            return cell
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, _printable(value))
            cell.data_type = "s"  # text stays text: "=…" is never a formula here
            return cell
        return value

    written = 0
    for row in rows:
        sheet.append([cell_of(v) for v in row])
        written += 1
    book.save(target)
    return written


def _printable(text: str) -> str:
    """XML 1.0 cannot hold most control characters; openpyxl refuses them rather than drop a row."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _sheet_title(title: str) -> str:
    """Excel's rules for a sheet name: at most 31 characters, none of []:*?/\\."""
    return "".join(ch for ch in title if ch not in "[]:*?/\\")[:31] or "export"
