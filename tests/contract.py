"""Checks real responses against the served OpenAPI document (tests/test_openapi.py, the schemathesis runs).

`Contract(doc).check(method, path, status, headers, body)` finds the operation (literal path segments win over
templated ones, as OpenAPI says), and fails unless the status is documented for it, every required header of
that response is present, and a JSON body validates against the response's schema (formats included:
date-time, uuid). `Contract.attach(client)` checks every response an httpx client receives.
"""

from __future__ import annotations

import re

import httpx
import jsonschema
import orjson
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:spooled:openapi"


class ContractViolation(AssertionError):
    pass


class Contract:
    def __init__(self, doc: dict):
        self.doc = doc
        self.registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
        self.templates: list[tuple[int, re.Pattern, str]] = []
        for path in doc["paths"]:
            literal = len(re.sub(r"\{[^}]+\}", "", path))
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            self.templates.append((-literal, pattern, path))
        self.templates.sort(key=lambda t: (t[0], t[2]))
        self.seen: set[tuple[str, str, int]] = set()     # (METHOD, template, status) checked so far

    def template(self, path: str) -> str | None:
        for _, pattern, template in self.templates:
            if pattern.match(path):
                return template
        return None

    def validate(self, value, pointer: str) -> None:
        """Validate `value` against the schema at `pointer` of the document ("#/components/schemas/Job")."""
        validator = jsonschema.Draft202012Validator({"$ref": DOC_URI + pointer}, registry=self.registry,
                                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            raise ContractViolation(f"{pointer}: {e.message} at {list(e.absolute_path)} "
                                    f"(schema {list(e.absolute_schema_path)})")

    def check(self, method: str, path: str, status: int, headers: httpx.Headers, body: bytes) -> str:
        template = self.template(path)
        where = f"{method} {path} -> {status}"
        if template is None or method.lower() not in self.doc["paths"][template]:
            raise ContractViolation(f"{where}: no such operation in the document")
        operation = self.doc["paths"][template][method.lower()]
        responses = operation["responses"]
        key = str(status)
        if key not in responses:
            raise ContractViolation(f"{where}: status {status} is not documented (documented: {sorted(responses)})")
        pointer = f"#/paths/{_escape(template)}/{method.lower()}/responses/{key}"
        response = responses[key]
        if "$ref" in response:
            pointer = response["$ref"]
            response = self._resolve(pointer)
        for name, header in response.get("headers", {}).items():
            header = self._resolve(header["$ref"]) if "$ref" in header else header
            if header.get("required") and name not in headers:
                raise ContractViolation(f"{where}: required header {name} is missing")
            if name in headers and header.get("schema"):
                self._check_header(where, name, headers[name], header["schema"])
        content = response.get("content")
        if not content:
            if body:
                raise ContractViolation(f"{where}: a body where the document says none")
        else:
            media = headers.get("content-type", "").split(";")[0].strip()
            if "*/*" not in content and media not in content:
                raise ContractViolation(f"{where}: content type {media!r}, documented {sorted(content)}")
            if media == "application/json":
                try:
                    value = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise ContractViolation(f"{where}: the body is not JSON ({exc})") from None
                try:
                    self.validate(value, f"{pointer}/content/application~1json/schema")
                except ContractViolation as exc:
                    raise ContractViolation(f"{where}: {exc}\n{body[:2000]!r}") from None
        self.seen.add((method.upper(), template, status))
        return template

    def _check_header(self, where: str, name: str, value: str, schema: dict) -> None:
        kind = schema.get("type")
        if kind == "integer" and not re.fullmatch(r"-?\d+", value):
            raise ContractViolation(f"{where}: header {name}: {value!r} is not an integer")
        if "enum" in schema and value not in schema["enum"]:
            raise ContractViolation(f"{where}: header {name}: {value!r} is not one of {schema['enum']}")

    def _resolve(self, pointer: str) -> dict:
        node = self.doc
        for part in pointer.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operations(self) -> set[tuple[str, str]]:
        return {(m.upper(), p) for p, item in self.doc["paths"].items() for m in item}

    def attach(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        """Check every response `client` receives (a violation fails the request that got it)."""
        async def hook(response: httpx.Response) -> None:
            await response.aread()
            self.check(response.request.method, response.request.url.path, response.status_code,
                       response.headers, response.content)
        client.event_hooks["response"] = [*client.event_hooks.get("response", []), hook]
        return client


def _escape(template: str) -> str:
    return template.replace("~", "~0").replace("/", "~1")
