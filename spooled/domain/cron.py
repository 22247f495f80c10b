"""Cron expressions and their fire times in an IANA time zone. Pure: the caller passes every instant.

cronsim parses and walks the calendar (5 fields `min hour dom month dow`, or the upstream product's 6 fields
`sec min hour dom month dow`; `*`, lists, ranges, steps, JAN-DEC, SUN-SAT, 7 = Sunday, `L`, `#n`). This module
owns what happens at DST transitions, one rule for both forms (Debian/Vixie cron's, which cronsim applies only to
5-field expressions; its 6-field walk would skip a time inside a gap and fire a repeated time twice):

- A **fixed-time** expression (its minute and hour fields do not start with `*`, e.g. `30 2 * * *`,
  `0 0 9-17 * * MON-FRI`) follows the wall clock:
  - a time inside a spring-forward gap fires once, at the first instant after the gap (02:30 on a day whose
    clocks jump from 02:00 to 03:00 fires at 03:00); several times inside one gap, and a time at the gap's end,
    fire once together;
  - a time that a fall-back repeats fires once, at its first occurrence.
- Any other expression (`*` or `*/n` in the minute or hour field: `*/15 * * * *`, `0 * * * *`) runs by elapsed
  time: it fires at every instant whose local time matches, so in a repeated hour it fires in both passes and
  times a gap removes do not occur (an every-15-minutes schedule keeps firing every 15 real minutes).

Every instant returned is an aware UTC datetime; at most one per second.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import attrs
from cronsim import CronSim, CronSimError

from spooled.domain import errors

UTC = dt.timezone.utc
_SECOND = dt.timedelta(seconds=1)
_TINY = dt.timedelta(microseconds=1)


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`, or ValidationFailed naming `timezone`."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise errors.invalid("timezone", f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Paris)") from None


@attrs.frozen
class Cron:
    expression: str
    tz: zoneinfo.ZoneInfo
    wall_clock: bool      # fixed-time: follows the wall clock across DST transitions (module docstring)

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first fire instant strictly after `t` (None if there is none within 50 years)."""
        try:
            if self.wall_clock:
                for naive in CronSim(self.expression, _wall(t, self.tz)):
                    inst = _instant(naive, self.tz)
                    if inst > t:
                        return inst
            else:
                for local in CronSim(self.expression, t.astimezone(self.tz)):
                    inst = local.astimezone(UTC)
                    if inst > t:
                        return inst
        except StopIteration:
            pass
        return None

    def first_at_or_after(self, t: dt.datetime) -> dt.datetime | None:
        return self.next_after(t - _TINY)

    def latest_at_or_before(self, t: dt.datetime) -> dt.datetime | None:
        """The last fire instant at or before `t` (None if there is none within 50 years)."""
        try:
            if self.wall_clock:
                local = t.astimezone(self.tz)
                start = _wall(t, self.tz) + _SECOND
                if local.fold:   # second pass of a repeated hour: later wall times mapped to earlier instants
                    start += local.replace(fold=0).utcoffset() - local.utcoffset()
                for naive in CronSim(self.expression, start, reverse=True):
                    inst = _instant(naive, self.tz)
                    if inst <= t:
                        return inst
            else:
                for local in CronSim(self.expression, (t + _SECOND).astimezone(self.tz), reverse=True):
                    inst = local.astimezone(UTC)
                    if inst <= t:
                        return inst
        except StopIteration:
            pass
        return None


def parse(expression: str, timezone: str = "UTC") -> Cron:
    """A validated cron in a zone; ValidationFailed naming `cron_expression` or `timezone`."""
    tz = zone(timezone)
    expr = " ".join(expression.split())
    fields = expr.split(" ")
    if len(fields) not in (5, 6):
        raise errors.invalid("cron_expression", "must have 5 fields (min hour dom month dow) or 6 (sec first)")
    try:
        CronSim(expr, dt.datetime(2000, 1, 1))
    except CronSimError as exc:
        raise errors.invalid("cron_expression", f"{exc} in {expression!r}") from None
    minute, hour = fields[-5], fields[-4]
    cron = Cron(expr, tz, not minute.startswith("*") and not hour.startswith("*"))
    if cron.next_after(dt.datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise errors.invalid("cron_expression", f"{expression!r} never fires")
    return cron


def _wall(t: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The local wall-clock time of instant `t`, naive (cronsim then walks the plain calendar)."""
    return t.astimezone(tz).replace(tzinfo=None)


def _offset_at(ts: int, tz: zoneinfo.ZoneInfo) -> dt.timedelta:
    return dt.datetime.fromtimestamp(ts, tz).utcoffset()


def _instant(naive: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A wall-clock time as an instant: its first occurrence when repeated; when it falls in a gap, the first
    instant after the gap (the transition itself)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap, fold=1 reads the time with the offset after the transition (an instant before it) and fold=0
    # with the offset before (an instant after it): the transition lies between. Bisect to the second.
    lo = int(naive.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp())
    after = _offset_at(hi, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == after:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)
