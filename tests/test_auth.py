"""JWT login/refresh/me/validate/logout, and access tokens accepted wherever an API key is."""

from __future__ import annotations

import time

import jwt

from tests.helpers import enqueue


def key_of(api) -> str:
    return api.headers["Authorization"].split(" ", 1)[1]


async def login(client, key):
    r = await client.post("/api/v1/auth/login", json={"api_key": key}, headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_login_gives_tokens_that_work_as_bearer(api, client):
    tokens = await login(client, key_of(api))
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_expires_in"] > tokens["expires_in"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = await enqueue(api)
    r = await client.get(f"/api/v1/jobs/{created['id']}", headers=bearer)
    assert r.status_code == 200 and r.json()["organization_id"] == api.org_id
    me = (await client.get("/api/v1/auth/me", headers=bearer)).json()
    assert me["organization_id"] == api.org_id and me["organization"]["id"] == api.org_id
    assert me["issued_at"] and me["expires_at"] > me["issued_at"]
    with_key = (await api.get("/api/v1/auth/me")).json()
    assert with_key["api_key_id"] == me["api_key_id"] and with_key["issued_at"] < with_key["expires_at"]
    # a refresh token is not an access token
    r = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"


async def test_login_with_a_bad_key_is_401(client):
    r = await client.post("/api/v1/auth/login", json={"api_key": "sp_live_nope"})
    assert r.status_code == 401
    assert (await client.post("/api/v1/auth/login", json={})).status_code == 422


async def test_refresh_is_reusable_until_logout(api, client):
    tokens = await login(client, key_of(api))
    for _ in range(2):
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
        fresh = r.json()["access_token"]
        assert (await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]},
                          headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 204
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert r.status_code == 401  # an access token cannot refresh


async def test_validate(api, client, server):
    tokens = await login(client, key_of(api))
    r = await client.post("/api/v1/auth/validate", json={"token": tokens["access_token"]})
    assert r.json()["valid"] is True and r.json()["claims"]["sub"] == api.org_id
    assert r.json()["organization_id"] == api.org_id and r.json()["queues"] == []
    invalid = {"valid": False, "error": "Invalid or expired token"}
    assert (await client.post("/api/v1/auth/validate", json={"token": "a.b.c"})).json() == invalid
    secret = server.services.settings.jwt_secret
    now = int(time.time())
    expired = jwt.encode({"sub": api.org_id, "api_key_id": "x", "type": "access", "iat": now - 7200,
                          "exp": now - 3600}, secret, algorithm="HS256")
    assert (await client.post("/api/v1/auth/validate", json={"token": expired})).json() == invalid
    assert (await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {expired}"})).status_code == 401
    forged = jwt.encode({"sub": api.org_id, "api_key_id": "x", "type": "access", "iat": now, "exp": now + 60},
                        "another-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert (await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})).status_code == 401


async def test_revoking_the_key_ends_its_tokens(api, client):
    r = await api.post("/api/v1/api-keys", json={"name": "short-lived"})
    second = r.json()
    tokens = await login(client, second["key"])
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/v1/jobs", headers=bearer)).status_code == 200
    assert (await api.delete(f"/api/v1/api-keys/{second['id']}")).status_code == 204
    assert (await client.get("/api/v1/jobs", headers=bearer)).status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_tokens_are_scoped_to_their_organization(api, other_api, client):
    mine = await enqueue(api)
    theirs = await login(client, key_of(other_api))
    r = await client.get(f"/api/v1/jobs/{mine['id']}", headers={"Authorization": f"Bearer {theirs['access_token']}"})
    assert r.status_code == 404
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": theirs["refresh_token"]},
                          headers=api.headers)
    assert r.status_code == 401  # cannot revoke another organization's token


async def test_bad_tokens_are_401(api, client, server):
    tokens = await login(client, key_of(api))
    secret = server.services.settings.jwt_secret
    claims = jwt.decode(tokens["access_token"], secret, algorithms=["HS256"])
    assert claims["org_id"] == claims["sub"] == api.org_id and claims["queues"] == [] and claims["type"] == "access"
    now = int(time.time())
    header, payload, signature = tokens["access_token"].split(".")
    tampered = ".".join([header, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], signature])
    unsigned = jwt.encode({**claims, "iat": now, "exp": now + 60}, None, algorithm="none")
    bad = {
        "alg none": unsigned,
        "alg none, signature kept": unsigned.rstrip(".") + "." + signature,
        "tampered": tampered,
        "wrong secret": jwt.encode(claims, "x" * 48, algorithm="HS256"),
        "api_key_id not a string": jwt.encode({**claims, "api_key_id": 12345}, secret, algorithm="HS256"),
        "sub not a string": jwt.encode({**claims, "sub": 7}, secret, algorithm="HS256"),
        "api_key_id a list": jwt.encode({**claims, "api_key_id": [claims["api_key_id"]]}, secret, algorithm="HS256"),
        "no type": jwt.encode({k: v for k, v in claims.items() if k != "type"}, secret, algorithm="HS256"),
        "other org": jwt.encode({**claims, "sub": "00000000-0000-0000-0000-000000000000"}, secret,
                                algorithm="HS256"),
        "HS384": jwt.encode(claims, secret, algorithm="HS384"),
        "refresh as access": tokens["refresh_token"],
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256"),
    }
    for what, token in bad.items():
        r = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED", (what, r.text)
        if what != "refresh as access":
            v = (await client.post("/api/v1/auth/validate", json={"token": token})).json()
            assert v["valid"] is False and v["error"], what
    # the genuine token still works
    r = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200


async def test_tokens_carry_the_keys_queues(api, client):
    r = await api.post("/api/v1/api-keys", json={"name": "q-only", "queues": ["a", "b"]})
    tokens = await login(client, r.json()["key"])
    v = (await client.post("/api/v1/auth/validate", json={"token": tokens["access_token"]})).json()
    assert v["valid"] is True and v["queues"] == ["a", "b"] and v["claims"]["queues"] == ["a", "b"]
    assert v["api_key_id"] == r.json()["id"] and v["organization_id"] == api.org_id and v["expires_at"]
    v = (await client.post("/api/v1/auth/validate", json={"token": tokens["refresh_token"]})).json()
    assert v["valid"] is True and v["claims"]["type"] == "refresh"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post("/api/v1/jobs", json={"queue_name": "c", "payload": {}}, headers=bearer)
            ).status_code == 403
    assert (await client.post("/api/v1/jobs", json={"queue_name": "a", "payload": {}}, headers=bearer)
            ).status_code == 201


def hs512(claims: dict, secret: str) -> str:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # pyjwt warns that a 48-byte key is short for SHA-512
        return jwt.encode(claims, secret, algorithm="HS512")


def _raw_jwt(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token with any header (pyjwt refuses to write some), signed with nothing or `signature`."""
    import base64
    import json

    def part(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode().rstrip("=")
    return ".".join([part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)])


async def test_forged_tokens_are_refused_on_every_path(api, client, server):
    """JWT forgery on every path that reads a token: REST bearer, /auth/refresh, /auth/validate, and gRPC (as
    x-api-key and as authorization: Bearer). `alg: none` in any case, a wrong key, the wrong type, expired."""
    from tests.access import rpc_code, with_grpcio
    from tests.grpcio_gen import spooled_pb2 as pb
    from tests.grpcio_gen import spooled_pb2_grpc

    tokens = await login(client, key_of(api))
    secret = server.services.settings.jwt_secret
    access = jwt.decode(tokens["access_token"], secret, algorithms=["HS256"])
    refresh = jwt.decode(tokens["refresh_token"], secret, algorithms=["HS256"])
    now = int(time.time())
    other_key = "another-secret-that-is-long-enough-for-hs256"

    def forged(claims: dict) -> dict[str, str]:
        fresh = {**claims, "iat": now, "exp": now + 600}
        header_sig = jwt.encode(fresh, secret, algorithm="HS256").split(".")[2]
        out = {alg: _raw_jwt({"alg": alg, "typ": "JWT"}, fresh) for alg in ("none", "None", "NONE", "nOnE")}
        out |= {
            "none with a real signature": _raw_jwt({"alg": "none"}, fresh).rstrip(".") + "." + header_sig,
            "HS256, empty signature": _raw_jwt({"alg": "HS256", "typ": "JWT"}, fresh),
            "wrong key": jwt.encode(fresh, other_key, algorithm="HS256"),
            "HS512 with the right key": hs512(fresh, secret),
            "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 60}, secret, algorithm="HS256"),
            "no exp": jwt.encode({k: v for k, v in fresh.items() if k != "exp"}, secret, algorithm="HS256"),
            "unknown type": jwt.encode({**fresh, "type": "admin"}, secret, algorithm="HS256"),
            "kid header": jwt.encode(fresh, other_key, algorithm="HS256", headers={"kid": "../../jwt_secret"}),
        }
        return out

    bad_access = forged(access) | {"refresh as access": jwt.encode({**refresh, "iat": now, "exp": now + 600},
                                                                   secret, algorithm="HS256")}
    bad_refresh = forged(refresh) | {"access as refresh": tokens["access_token"]}
    for what, token in bad_access.items():
        r = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED", (what, r.text)
        if what != "refresh as access":       # a genuine refresh token: validate reports it valid, as such
            v = (await client.post("/api/v1/auth/validate", json={"token": token})).json()
            assert v["valid"] is False, (what, v)
    for what, token in bad_refresh.items():
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED", (what, r.text)

    def calls(channel):
        stub = spooled_pb2_grpc.QueueServiceStub(channel)
        out = {}
        for what, token in bad_access.items():
            for md in ((("x-api-key", token),), (("authorization", f"Bearer {token}"),)):
                out[(what, md[0][0])] = rpc_code(lambda: stub.GetQueueStats(
                    pb.GetQueueStatsRequest(queue_name="q"), metadata=md, timeout=20))
        out["genuine"] = rpc_code(lambda: stub.GetQueueStats(
            pb.GetQueueStatsRequest(queue_name="q"), metadata=(("x-api-key", tokens["access_token"]),), timeout=20))
        return out
    out = await with_grpcio(server.grpc_address, calls)
    assert out.pop("genuine") in ("OK", "NOT_FOUND")         # admitted (the queue does not exist)
    assert set(out.values()) == {"UNAUTHENTICATED"}, {k: v for k, v in out.items() if v != "UNAUTHENTICATED"}
    # the genuine tokens still work
    assert (await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            ).status_code == 200
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            ).status_code == 200
