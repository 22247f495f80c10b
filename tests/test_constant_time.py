"""Keys, codes, tokens and signatures are checked in constant time (or by hash-then-lookup), pinned by reading
the code itself (ast):

- nowhere in `spooled/` is a secret-named value compared with `==`, `!=`, `in` or `not in` to anything but a
  constant (a timing side channel: an early-exit comparison tells how much of a guess was right);
- each secret check is one of: `hmac.compare_digest` (the admin key, email login codes), hash-then-lookup
  (API keys: SHA-256 of 256 random bits, found through a unique index), or a library that compares with
  `hmac.compare_digest` (pyjwt's HS256 signatures, stripe's webhook signatures) — and these checks are where
  the secret is read."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import jwt.algorithms
import stripe._util

from spooled.services import auth, billing, email_login
from spooled.transports.http import routes_orgs

ROOT = Path(__file__).resolve().parent.parent / "spooled"
# a word of an identifier (split at `_`, `.`, brackets) that names a secret; `key_id`, `key_prefix`,
# `status_code`, `idempotency_key` and the like name no secret
SECRET = re.compile(r"(?<![a-z])(secret|password|passwd|token|signature|digest|hash|credential|code|key|lease_id)"
                    r"(?![a-z]|_(?:id|prefix|name|type|count)\b)", re.I)
NOT_SECRET = re.compile(r"(idempotency_key|status_code|error_code|cache_key|sort_key)", re.I)
# comparisons of values the names above mistake for secrets, and what they are
NOT_SECRETS = {("spooled/domain/dag.py", "key in index"): "a workflow job's key: a label within the request",
               ("spooled/services/webhooks.py", "key in present"): "a field name among the fields sent"}


def _is_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
        (".count", "len")))


def secret_comparisons(tree: ast.AST) -> list[ast.Compare]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                continue
            for a, b in ((left, right), (right, left)):
                name = NOT_SECRET.sub("", ast.unparse(a))
                if SECRET.search(name) and not _is_constant(a) and not _is_constant(b):
                    found.append(node)
    return found


def test_no_secret_is_compared_with_equality():
    hits = []
    for path in sorted(ROOT.rglob("*.py")):
        if "gen" in path.relative_to(ROOT).parts:
            continue
        where = str(path.relative_to(ROOT.parent))
        for node in secret_comparisons(ast.parse(path.read_text())):
            if (where, ast.unparse(node)) not in NOT_SECRETS:
                hits.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert not hits, "compare secrets with hmac.compare_digest (or look them up by hash):\n" + "\n".join(hits)


def test_the_checker_finds_an_early_exit_comparison():
    bad = ast.parse("def ok(given, configured):\n    return given == configured_key or token != expected\n")
    assert len(secret_comparisons(bad)) == 2
    fine = ast.parse("def ok(k):\n    return k.key_hash is None or code == 'x' or hmac.compare_digest(a, b)\n")
    assert secret_comparisons(fine) == []


def calls_in(fn) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}


def test_each_secret_check_is_constant_time():
    # the admin key and the email login code: hmac.compare_digest
    assert "hmac.compare_digest" in calls_in(routes_orgs.admin_key_ok)
    assert "hmac.compare_digest" in calls_in(email_login.EmailLogin.verify)
    # API keys: hashed, then found through the unique index on the hash (never compared)
    key_lookup = calls_in(auth.Authenticator._key)
    assert {"hash_key", "self._keys.grant_by_hash"} <= key_lookup
    schema = (ROOT / "schema.sql").read_text()
    assert "key_hash            bytea       NOT NULL" in schema and "api_keys_key_hash_key UNIQUE (key_hash)" in schema
    # JWT: pyjwt with HS256 only, whose HMAC check is hmac.compare_digest
    decode = inspect.getsource(auth.Authenticator.decode)
    assert 'jwt.decode(token, self._secret, algorithms=["HS256"]' in decode
    assert "hmac.compare_digest" in inspect.getsource(jwt.algorithms.HMACAlgorithm.verify)
    # Stripe webhooks: the library's signature check, whose comparison is hmac.compare_digest
    assert "stripe.Webhook.construct_event" in calls_in(billing.Billing.webhook)
    assert "hmac.compare_digest" in inspect.getsource(stripe._util.secure_compare)
