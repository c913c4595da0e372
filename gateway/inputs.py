"""What text and dates from people (API, CLI) may hold: one rule, shared by both.

Control characters would break CSV exports, logs and terminals; bidi overrides
make a name or permit number display as something it is not. Other format
characters (e.g. the zero-width joiners real names in some scripts need) pass.
Dates are bounded so that arithmetic on them (a day + 1, a zone shift) cannot
overflow, and so that a typo like year 20260 is refused, not stored.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TypeVar

# C0 and C1 controls (NUL, TAB, CR, LF, ESC, DEL, …), line/paragraph separators,
# and the bidi marks, embeddings, overrides and isolates.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")

# Permit validity: wide, so real permits (and "valid to 2199" for permanent residents) fit.
PERMIT_YEARS = (1900, 2200)
# Event times (entries, alerts, audit): the gateway's own lifetime, with margin.
TIME_YEARS = (2000, 2100)

D = TypeVar("D", bound=date)  # a date or a datetime


def check_text(value: str, what: str) -> str:
    """`value` unchanged, or ValueError naming the first refused character."""
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise ValueError(f"{what} contains a control or bidi character (U+{ord(bad.group()):04X})")
    return value


def check_permit_date(value: date, what: str) -> date:
    return _in_years(value, PERMIT_YEARS, what)


def check_time(value: D, what: str) -> D:
    """A query time or day (a datetime, or a date such as the chart's day)."""
    return _in_years(value, TIME_YEARS, what)


def _in_years(value: D, years: tuple[int, int], what: str) -> D:
    lo, hi = years
    if not lo <= value.year <= hi:
        raise ValueError(f"{what} must be in the years {lo} to {hi}")
    return value
