"""Who an entry is about, for people reading the log: names and rooms by tenant id, and "person" searches.

Both read the tenants table in one statement per batch of ids, never one per entry. A tenant that
was deleted has no name any more; its entries keep their tenant id (evidence, DESIGN §6.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

MAX_PERSON_IDS = 500  # a person search covers at most this many tenants
_CHUNK = 500  # ids per IN (…) list: well under SQLite's bound-parameter limit


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching itself literally (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def person_tenant_ids(conn: Connection, person: str, limit: int = MAX_PERSON_IDS) -> list[str]:
    """Ids of the tenants `person` names: id equal to it, name containing it, or permit number equal
    to it or starting with it. LIKE in SQLite ignores case for ASCII letters only, as wanted."""
    pattern = _like(person)
    rows = conn.exec_driver_sql(
        "SELECT id FROM tenants WHERE id = ? OR name LIKE ? ESCAPE '\\' OR permit_number LIKE ? ESCAPE '\\'"
        " ORDER BY id LIMIT ?",
        (person, f"%{pattern}%", f"{pattern}%", limit),
    )
    return [tid for (tid,) in rows]


def names_and_rooms(conn: Connection, tenant_ids: Iterable[str | None]) -> dict[str, tuple[str, str | None]]:
    """tenant id -> (name, room) for those of `tenant_ids` that still exist."""
    wanted = sorted({t for t in tenant_ids if t is not None})
    found: dict[str, tuple[str, str | None]] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for tid, name, room in conn.exec_driver_sql(
            f"SELECT id, name, room FROM tenants WHERE id IN ({marks})", tuple(chunk)
        ):
            found[tid] = (name, room)
    return found


def _cards_by_low24(conn: Connection, tenant_ids: Iterable[str]) -> dict[tuple[str, int], int]:
    """(tenant id, low 24 bits) -> the enrolled card number, for those tenants' cards."""
    wanted = sorted(set(tenant_ids))
    found: dict[tuple[str, int], int] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for tid, number, low24 in conn.exec_driver_sql(
            f"SELECT tenant_id, number, low24 FROM cards WHERE tenant_id IN ({marks})", tuple(chunk)
        ):
            found[(tid, low24)] = number
    return found


def add_names(conn: Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set `tenant_name` and `room` on entry items (None when no tenant, or a deleted one), and
    `matched_card`: for a 26-bit read, which carries only the low 24 bits of a card's number, the
    tenant's enrolled card it matched (so the page shows the number printed on the card)."""
    known = names_and_rooms(conn, (item["tenant_id"] for item in items))
    short = [item for item in items if item.get("card_bits") == 26 and item["tenant_id"] is not None]
    cards = _cards_by_low24(conn, (item["tenant_id"] for item in short)) if short else {}
    short_reads = {id(item) for item in short}
    for item in items:
        item["tenant_name"], item["room"] = known.get(item["tenant_id"], (None, None))
        number = item.get("card_number")
        item["matched_card"] = (cards.get((item["tenant_id"], number & 0xFFFFFF))
                                if id(item) in short_reads and number is not None else None)  # fmt: skip
    return items
