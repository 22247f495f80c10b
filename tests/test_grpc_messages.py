"""Message conversion shortcuts (spooled/transports/grpc/messages.py) against protobuf's own conversions."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from spooled.transports.grpc.messages import timestamp

UTC = dt.timezone.utc


def test_timestamp_is_what_from_datetime_gives():
    for value in (dt.datetime(2026, 12, 1, 20, 59, 7, 123456, tzinfo=UTC),
                  dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),       # before the epoch
                  dt.datetime(2030, 5, 1, 1, 2, 3, 4),                              # naive: UTC
                  dt.datetime(2026, 1, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=5))),
                  dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        expected = timestamp_pb2.Timestamp()
        expected.FromDatetime(value)
        assert timestamp(value) == expected, value
