"""Settings from the environment: the connection, stream, CORS and retention limits (positive numbers, one
sentence naming the variable otherwise) and the defaults of what is unset."""

from __future__ import annotations

import pytest

from spooled.settings import ConfigError, Settings, from_env


def env(tmp_path, **values) -> dict[str, str]:
    return {"SPOOLED_DATA_DIR": str(tmp_path), **values}


def test_defaults(tmp_path):
    s = from_env(env(tmp_path))
    d = Settings()
    for name in ("max_connections", "header_timeout_secs", "body_timeout_secs", "keep_alive_secs", "max_streams",
                 "max_streams_per_org", "retention_deadletter_days", "cors_origins", "smtp_from"):
        assert getattr(s, name) == getattr(d, name), name
    assert s.smtp_from == "Spooled <no-reply@localhost>" and s.cors_origins == ()


def test_limits_from_the_environment(tmp_path):
    s = from_env(env(tmp_path, SPOOLED_MAX_CONNECTIONS="500", SPOOLED_HTTP_HEADER_TIMEOUT_SECS="2.5",
                     SPOOLED_HTTP_BODY_TIMEOUT_SECS="30", SPOOLED_HTTP_KEEP_ALIVE_SECS="15",
                     SPOOLED_MAX_STREAMS="100", SPOOLED_MAX_STREAMS_PER_ORG="10",
                     SPOOLED_RETENTION_DEADLETTER_DAYS="90",
                     SPOOLED_CORS_ORIGINS="https://a.example.com,http://localhost:5173"))
    assert (s.max_connections, s.header_timeout_secs, s.body_timeout_secs, s.keep_alive_secs) == (500, 2.5, 30, 15)
    assert (s.max_streams, s.max_streams_per_org, s.retention_deadletter_days) == (100, 10, 90)
    assert s.cors_origins == ("https://a.example.com", "http://localhost:5173")


@pytest.mark.parametrize("name,value", [("SPOOLED_MAX_CONNECTIONS", "0"), ("SPOOLED_MAX_CONNECTIONS", "1.5"),
                                        ("SPOOLED_MAX_STREAMS_PER_ORG", "-3"), ("SPOOLED_HTTP_BODY_TIMEOUT_SECS", "nan"),
                                        ("SPOOLED_HTTP_HEADER_TIMEOUT_SECS", "inf"),
                                        ("SPOOLED_HTTP_KEEP_ALIVE_SECS", "soon"),
                                        ("SPOOLED_RETENTION_DEADLETTER_DAYS", "0"),
                                        ("SPOOLED_CORS_ORIGINS", "example.com")])
def test_bad_values_are_one_sentence_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as exc:
        from_env(env(tmp_path, **{name: value}))
    assert name in str(exc.value) and value in str(exc.value)
