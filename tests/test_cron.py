"""Cron maths with an explicit clock: both forms, names, steps, the year boundary, DST in several zones, and the
catch-up/overlap policies (domain/cron.py, domain/firing.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from spooled.domain import errors
from spooled.domain.cron import parse
from spooled.domain.firing import GRACE, MAX_FIRES, plan

UTC = dt.timezone.utc


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def fires(expr: str, tz: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Every fire in (start, end], as local ISO times with their offsets."""
    cron, out, t = parse(expr, tz), [], start
    while True:
        t = cron.next_after(t)
        if t is None or t > end:
            return out
        assert t.tzinfo is UTC
        out.append(t.astimezone(cron.tz).isoformat())


def test_five_and_six_fields():
    assert fires("*/15 * * * *", "UTC", at(2025, 5, 1, 10, 7), at(2025, 5, 1, 11)) == [
        "2025-05-01T10:15:00+00:00", "2025-05-01T10:30:00+00:00", "2025-05-01T10:45:00+00:00",
        "2025-05-01T11:00:00+00:00"]
    # the 6-field form has seconds first
    assert fires("*/20 * * * * *", "UTC", at(2025, 5, 1, 10, 0, 5), at(2025, 5, 1, 10, 1)) == [
        "2025-05-01T10:00:20+00:00", "2025-05-01T10:00:40+00:00", "2025-05-01T10:01:00+00:00"]
    assert fires("30 0 9 * * *", "UTC", at(2025, 5, 1), at(2025, 5, 3)) == [
        "2025-05-01T09:00:30+00:00", "2025-05-02T09:00:30+00:00"]
    # strictly after: a fire at exactly `t` is not the next one
    assert parse("0 9 * * *").next_after(at(2025, 5, 1, 9)) == at(2025, 5, 2, 9)
    assert parse("0 9 * * *").first_at_or_after(at(2025, 5, 1, 9)) == at(2025, 5, 1, 9)


def test_lists_ranges_steps_and_names():
    # Thursday 2025-05-01; weekday and month names in either case
    assert fires("0 8-18/4 * * mon-fri", "UTC", at(2025, 5, 2, 9), at(2025, 5, 6)) == [
        "2025-05-02T12:00:00+00:00", "2025-05-02T16:00:00+00:00", "2025-05-05T08:00:00+00:00",
        "2025-05-05T12:00:00+00:00", "2025-05-05T16:00:00+00:00"]
    assert fires("0 0 1 JAN,jul *", "UTC", at(2025, 1, 2), at(2026, 12, 31)) == [
        "2025-07-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00"]
    assert fires("5,10 12 * * SUN", "UTC", at(2025, 5, 1), at(2025, 5, 5)) == [
        "2025-05-04T12:05:00+00:00", "2025-05-04T12:10:00+00:00"]
    assert fires("0 12 * * 7", "UTC", at(2025, 5, 1), at(2025, 5, 5)) == ["2025-05-04T12:00:00+00:00"]  # 7 = Sunday


def test_year_boundary():
    assert parse("0 0 1 1 *").next_after(at(2025, 12, 31, 23, 59, 59)) == at(2026, 1, 1)
    assert parse("59 59 23 31 12 *").next_after(at(2025, 6, 1)) == at(2025, 12, 31, 23, 59, 59)
    assert parse("0 0 1 1 *").latest_at_or_before(at(2026, 1, 1, 0, 0, 30)) == at(2026, 1, 1)
    assert parse("0 0 1 1 *").latest_at_or_before(at(2025, 12, 31, 23, 59)) == at(2025, 1, 1)
    # in Auckland the new year starts at 11:00 UTC on 31 December (NZDT, +13)
    assert parse("0 0 1 JAN *", "Pacific/Auckland").next_after(at(2025, 12, 1)) == at(2025, 12, 31, 11)
    # leap day: the next 29 February after 2025 is in 2028
    assert parse("0 0 29 2 *").next_after(at(2025, 3, 1)) == at(2028, 2, 29)


# America/New_York: 2025-03-09 02:00 EST -> 03:00 EDT; 2025-11-02 02:00 EDT -> 01:00 EST.
# Europe/Berlin:    2025-03-30 02:00 CET  -> 03:00 CEST; 2025-10-26 03:00 CEST -> 02:00 CET.
SPRING = [("America/New_York", at(2025, 3, 9), "2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"),
          ("Europe/Berlin", at(2025, 3, 29, 12), "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00")]


@pytest.mark.parametrize("expr", ["30 2 * * *", "0 30 2 * * *"])
@pytest.mark.parametrize("tz,start,gap_fire,next_day", SPRING)
def test_a_time_in_the_spring_gap_fires_once_after_it(expr, tz, start, gap_fire, next_day):
    assert fires(expr, tz, start, start + dt.timedelta(days=2)) == [gap_fire, next_day]


@pytest.mark.parametrize("tz,start,gap_fire,next_day", SPRING)
def test_several_times_in_one_gap_and_the_gap_end_fire_once(tz, start, gap_fire, next_day):
    got = fires("0,15,30 2,3 * * *", tz, start, start + dt.timedelta(days=1, hours=12))
    assert got.count(gap_fire) == 1 and len(got) == len(set(got))
    assert got[0] == gap_fire and got[1] == gap_fire.replace("03:00:00", "03:15:00")


@pytest.mark.parametrize("tz,start,first,second", [
    ("America/New_York", at(2025, 11, 1, 12), "2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"),
    ("Europe/Berlin", at(2025, 10, 25, 12), "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00")])
@pytest.mark.parametrize("form", ["5", "6"])
def test_a_repeated_time_fires_once_at_its_first_occurrence(tz, start, first, second, form):
    hour = first[11:13]
    expr = f"30 {int(hour)} * * *" if form == "5" else f"0 30 {int(hour)} * * *"
    assert fires(expr, tz, start, start + dt.timedelta(days=2)) == [first, second]


def test_interval_expressions_keep_elapsed_time_across_both_transitions():
    # spring: 01:30 EST is followed 30 real minutes later by 03:00 EDT
    assert fires("*/30 * * * *", "America/New_York", at(2025, 3, 9, 6), at(2025, 3, 9, 7, 30)) == [
        "2025-03-09T01:30:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:30:00-04:00"]
    # fall: both passes of the repeated hour, in either form
    for expr in ("*/30 * * * *", "0 */30 * * * *"):
        assert fires(expr, "America/New_York", at(2025, 11, 2, 4, 45), at(2025, 11, 2, 7)) == [
            "2025-11-02T01:00:00-04:00", "2025-11-02T01:30:00-04:00", "2025-11-02T01:00:00-05:00",
            "2025-11-02T01:30:00-05:00", "2025-11-02T02:00:00-05:00"]
    assert fires("0 * * * *", "Europe/Berlin", at(2025, 10, 25, 23, 30), at(2025, 10, 26, 2, 30)) == [
        "2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"]


def test_half_hour_gap_in_lord_howe():
    # Australia/Lord_Howe moves its clocks 30 minutes: 2025-10-05 02:00 -> 02:30 (+10:30 -> +11)
    assert fires("15 2 * * *", "Australia/Lord_Howe", at(2025, 10, 3, 12), at(2025, 10, 5, 12)) == [
        "2025-10-04T02:15:00+10:30", "2025-10-05T02:30:00+11:00"]


def test_latest_at_or_before_across_a_fall_back():
    wall = parse("30 1 * * *", "America/New_York")
    est_0124 = at(2025, 11, 2, 6, 24)     # 01:24 EST, the second pass
    assert wall.latest_at_or_before(est_0124) == at(2025, 11, 2, 5, 30)    # 01:30 EDT, the first pass
    assert wall.latest_at_or_before(at(2025, 11, 2, 5, 12)) == at(2025, 11, 1, 5, 30)
    interval = parse("*/30 * * * *", "America/New_York")
    assert interval.latest_at_or_before(est_0124) == at(2025, 11, 2, 6)    # 01:00 EST
    gap = parse("30 2 * * *", "America/New_York")
    assert gap.latest_at_or_before(at(2025, 3, 9, 7, 10)) == at(2025, 3, 9, 7)   # the gap fire, 03:00 EDT


@pytest.mark.parametrize("expr,message", [
    ("61 * * * *", "Bad minute"), ("* * *", "5 fields"), ("* * * * * * *", "5 fields"),
    ("0 0 31 2 *", "Bad day-of-month"), ("0 0 * FOO *", "Bad month"), ("", "5 fields")])
def test_invalid_expressions_name_the_field(expr, message):
    with pytest.raises(errors.ValidationFailed) as e:
        parse(expr)
    assert e.value.details["field"] == "cron_expression" and message in e.value.message


@pytest.mark.parametrize("tz", ["Mars/Olympus", "../../etc/passwd", "", "EST5EDT/x"])
def test_invalid_zones_name_the_field(tz):
    with pytest.raises(errors.ValidationFailed) as e:
        parse("* * * * *", tz)
    assert e.value.details["field"] == "timezone"


# -- the policies -------------------------------------------------------------------------------------------
EVERY_MIN = parse("* * * * *")
T0 = at(2025, 5, 1, 12)


def test_on_time_fire_runs_and_next_is_after_now():
    p = plan(EVERY_MIN, T0, T0 + dt.timedelta(seconds=0.4))
    assert p.run == [T0] and p.skipped == [] and p.next_run_at == T0 + dt.timedelta(minutes=1)


def test_latest_collapses_missed_fires_into_the_latest():
    now = T0 + dt.timedelta(hours=2, seconds=90)    # 120 fires missed, none within the grace
    p = plan(EVERY_MIN, T0, now)
    assert p.run == [T0 + dt.timedelta(hours=2, minutes=1)] and p.next_run_at == T0 + dt.timedelta(hours=2, minutes=2)
    daily = parse("0 3 * * *")
    p = plan(daily, at(2025, 5, 1, 3), at(2025, 5, 4, 12))
    assert p.run == [at(2025, 5, 4, 3)] and p.next_run_at == at(2025, 5, 5, 3)


def test_fires_within_the_grace_are_never_collapsed():
    per_sec = parse("* * * * * *")
    p = plan(per_sec, T0, T0 + dt.timedelta(seconds=2.5))     # the loop ran late: 3 fires are due
    assert p.run == [T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)]
    assert p.next_run_at == T0 + dt.timedelta(seconds=3)
    # after a long outage only the fires within the grace run
    p = plan(per_sec, T0, T0 + dt.timedelta(hours=1))
    assert len(p.run) == GRACE.seconds + 1 and p.run[-1] == T0 + dt.timedelta(hours=1)


def test_skip_drops_missed_fires():
    hourly = parse("0 * * * *")
    p = plan(hourly, T0, T0 + dt.timedelta(hours=2, seconds=90), catch_up="skip")
    assert p.run == [] and p.next_run_at == T0 + dt.timedelta(hours=3)
    # an every-minute schedule always has a fire within the grace: after an outage that one runs
    p = plan(EVERY_MIN, T0, T0 + dt.timedelta(hours=2, seconds=90), catch_up="skip")
    assert p.run == [T0 + dt.timedelta(hours=2, minutes=1)]
    p = plan(EVERY_MIN, T0, T0 + dt.timedelta(seconds=30), catch_up="skip")   # late but within the grace
    assert p.run == [T0]


def test_all_runs_every_missed_fire_bounded_per_pass():
    now = T0 + dt.timedelta(minutes=5, seconds=10)
    p = plan(EVERY_MIN, T0, now, catch_up="all")
    assert p.run == [T0 + dt.timedelta(minutes=i) for i in range(6)] and p.next_run_at == T0 + dt.timedelta(minutes=6)
    now = T0 + dt.timedelta(minutes=250)
    p = plan(EVERY_MIN, T0, now, catch_up="all")
    assert len(p.run) == MAX_FIRES and p.next_run_at == T0 + dt.timedelta(minutes=MAX_FIRES)   # due again at once
    p2 = plan(EVERY_MIN, p.next_run_at, now, catch_up="all")
    assert p2.run[0] == T0 + dt.timedelta(minutes=MAX_FIRES) and not set(p.run) & set(p2.run)


def test_overlap_skip():
    now = T0 + dt.timedelta(minutes=3, seconds=5)
    p = plan(EVERY_MIN, T0, now, catch_up="all", overlap="skip")
    assert p.run == [T0] and p.skipped == [T0 + dt.timedelta(minutes=i) for i in (1, 2, 3)]
    p = plan(EVERY_MIN, T0, T0, overlap="skip", previous_active=True)
    assert p.run == [] and p.skipped == [T0] and p.next_run_at == T0 + dt.timedelta(minutes=1)
    p = plan(EVERY_MIN, T0, T0, overlap="allow", previous_active=True)
    assert p.run == [T0]
