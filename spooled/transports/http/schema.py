"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) built from the code's own definitions, for the OpenAPI document
(`openapi.py`):

- request bodies from the attrs input models (`domain/inputs.py` and the few small ones next to their routes):
  each field's type as `convert.structure` takes it (strictly: `5` is an integer, `"5"` is not, `5.0` is a
  number), its default, whether it is required, and the bounds its validators declare (`json_schema`; a
  validator without one is an error here, so no bound goes undocumented);
- response bodies from the domain models' field types plus each view's field list (`views.py`: `model`).

`component` names a schema: the document lists it under `components/schemas` and refers to it by `$ref`.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
import uuid

import attrs

from spooled.domain.inputs import JsonObject
from spooled.domain.models import RawJson

Schema = dict

COMPONENTS: dict[str, Schema] = {}

ANY: Schema = {}
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
UUID: Schema = {"type": "string", "format": "uuid"}
OBJECT: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def component(name: str, schema: Schema) -> Schema:
    """Register `schema` as `components/schemas/<name>`; returns the `$ref` to it."""
    known = COMPONENTS.setdefault(name, schema)
    if known is not schema and known != schema:
        raise ValueError(f"two different schemas are both named {name!r}")
    return ref(name)


def nullable(schema: Schema) -> Schema:
    """`schema` or JSON null."""
    if schema == ANY or _admits_null(schema):
        return schema
    if set(schema) - {"description"} <= {"type", "format", "minimum", "maximum", "minLength", "maxLength",
                                          "pattern", "minItems", "maxItems", "items", "properties", "required",
                                          "additionalProperties"} and "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {**schema, "type": [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _admits_null(schema: Schema) -> bool:
    kinds = schema.get("type")
    return kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or \
        any(_admits_null(s) for s in schema.get("anyOf", ()))


def const(value) -> Schema:
    return {"const": value}


def enum(*values) -> Schema:
    return {"enum": list(values)}


def array(items: Schema, **bounds) -> Schema:
    return {"type": "array", "items": items, **bounds}


def obj(properties: dict[str, Schema], *, optional: typing.Iterable[str] = (), open_: bool = False,
        description: str | None = None) -> Schema:
    """An object with exactly these keys (all present unless named in `optional`; no others unless `open_`)."""
    out: Schema = {"type": "object", "properties": properties,
                   "required": [k for k in properties if k not in set(optional)]}
    if not open_:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def merge(*schemas: Schema) -> Schema:
    """Objects from `obj`/`model` joined: the union of their keys (a view that adds fields to another's)."""
    props: dict[str, Schema] = {}
    required: list[str] = []
    for s in schemas:
        props.update(s["properties"])
        required += [k for k in s["required"] if k not in required]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


# -- Python types -> schema ---------------------------------------------------------------------------------------
_SCALARS: dict[object, Schema] = {str: STRING, int: INTEGER, float: NUMBER, bool: BOOLEAN, dt.datetime: TIME,
                                  uuid.UUID: UUID, typing.Any: ANY, RawJson: ANY, JsonObject: OBJECT}


def of_type(tp, *, inputs: bool = False) -> Schema:
    """The schema of values of the annotation `tp` (`inputs`: attrs classes are input models, else models)."""
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"cannot describe {tp!r}")
        inner = of_type(args[0], inputs=inputs)
        return nullable(inner) if len(args) < len(typing.get_args(tp)) else inner
    if origin in (list, tuple):
        (item, *_rest) = typing.get_args(tp)
        return array(of_type(item, inputs=inputs))
    if attrs.has(tp):
        return input_model(tp) if inputs else component(tp.__name__, model(tp))
    raise TypeError(f"cannot describe {tp!r}")


def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


# -- input models ---------------------------------------------------------------------------------------------------
def _validators(validator) -> list:
    if validator is None:
        return []
    inner = getattr(validator, "_validators", None)      # attrs.validators.and_
    return [v for part in inner for v in _validators(part)] if inner is not None else [validator]


def _optional(hint) -> tuple[bool, object]:
    """(whether `hint` admits None, the type without None)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return True, inner
    return False, hint


def _field_schema(cls: type, field: attrs.Attribute, hint) -> Schema:
    """A field's value: its type, then its validators' bounds, then its converter's (an empty id is no id);
    null where the annotation admits None or an untyped field defaults to None."""
    optional_, inner = _optional(hint)
    base = of_type(inner, inputs=True)
    for v in _validators(field.validator):
        bounds = getattr(v, "json_schema", None)
        if bounds is None:
            raise TypeError(f"{cls.__name__}.{field.name}: its validator {v!r} declares no json_schema")
        if "items" in bounds and "items" in base:
            bounds = {**bounds, "items": {**base["items"], **bounds["items"]}}
        base = {**base, **bounds}
    if base.get("minLength") == 0:
        del base["minLength"]
    if getattr(field.converter, "accepts_empty", False) and ("pattern" in base or "minLength" in base):
        base = {"anyOf": [base, {"const": ""}]}
    if field.name in getattr(cls, "__not_null__", ()):     # optional (absent keeps the value) but never null
        optional_ = False
    if optional_ or (field.default is None and inner is typing.Any):
        base = nullable(base)
    if field.default is not attrs.NOTHING and not isinstance(field.default, attrs.Factory) and \
            (field.default is not None or _admits_null(base)):  # type: ignore
        base["default"] = field.default
    return base


def input_model(cls: type, name: str | None = None) -> Schema:
    """The request body `convert.structure(data, cls)` accepts, as a `$ref` to a component named after `cls`.
    Unknown keys are ignored (so the object is open)."""
    name = name or cls.__name__.lstrip("_")
    if name in COMPONENTS:
        return component(name, COMPONENTS[name])
    hints = _hints(cls)
    props, required = {}, []
    for f in attrs.fields(cls):
        props[f.name] = _field_schema(cls, f, hints[f.name])
        if f.default is attrs.NOTHING:
            required.append(f.name)
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    schema.update(getattr(cls, "__json_schema__", {}))
    doc = _first_paragraph(cls.__doc__)
    if doc and not (cls.__doc__ or "").startswith(f"{cls.__name__}("):
        schema["description"] = doc
    return component(name, schema)


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())


def accepts_empty(cls: type) -> bool:
    """Whether `{}` is a valid body for `cls` (no required field, and no cross-field rule)."""
    return all(f.default is not attrs.NOTHING for f in attrs.fields(cls)) and not hasattr(cls, "__json_schema__")


# -- response models --------------------------------------------------------------------------------------------------
def model(cls: type, *names: str, **overrides: Schema | str) -> Schema:
    """An object of the fields `names` (`...`: every field) of the model `cls`, typed by its annotations, plus
    `overrides`: the schema of a key (a listed field's narrower type, or a key the view computes), or the name
    of the model field whose value the view shows under that key (`queue_name="name"`)."""
    hints = _hints(cls)
    if names == (...,):
        names = tuple(f.name for f in attrs.fields(cls))
    props: dict[str, Schema] = {}
    for n in names:
        props[n] = overrides.pop(n) if isinstance(overrides.get(n), dict) else of_type(hints[n])
    for key, spec in overrides.items():
        props[key] = of_type(hints[spec]) if isinstance(spec, str) else spec
    return obj(props)
