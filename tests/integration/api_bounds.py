"""The bounds the API documents, read from its own OpenAPI document, and the values at them.

For every operation this lists its inputs (path, query and header parameters, and each
property of a JSON or form body) with their schemas; for a schema, the values at each bound
it states (`minimum`/`maximum` and their exclusive forms, `minLength`/`maxLength`,
`pattern`, `enum`, `minItems`/`maxItems`, `maxProperties`, `propertyNames`) and one past
each; and whether a value conforms to the schema. Nothing here is a list of routes or
fields, so a new parameter or a changed bound is covered as soon as the application
declares it; the one table, `VALID_BODIES`, is checked against the document.

Times carry a bound the schema cannot state: the API holds 1970 to 9000
(`api.types.EARLIEST`, `LATEST`, docs/api.md), so a `date-time` is at its bounds there and
conforms only inside them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import jsonschema_rs

from api.types import EARLIEST, LATEST


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


# The input is left out of the request.
ABSENT: Final = _Absent()
STREAM_MEDIA_TYPE: Final = "text/event-stream"
# A value that matches a pattern is found by trying these characters at every length up to
# this one, after the pattern's literal prefix; a pattern they cannot match fails loudly.
_FILLERS: Final = "aA1_0"
_PROBE_LENGTH: Final = 300
_BAD_CHARACTERS: Final = "! é/"
_METHODS: Final = ("get", "put", "post", "delete", "patch")
_STRING_KEYWORDS: Final = frozenset({"minLength", "maxLength", "pattern", "format"})


@dataclass(frozen=True)
class Copies:
    """A list of `count` copies of one valid item: the first item of the request's usual
    value when it has one (a real site, say), else `fallback`."""

    count: int
    fallback: Any


@dataclass(frozen=True)
class Bound:
    """A value at (or one past) a bound, named for test ids."""

    label: str
    value: Any


@dataclass(frozen=True)
class Input:
    """One input of an operation: where it goes (`path`, `query`, `header`, `body` for a
    property of a JSON body, `form` for a form field), its name and schema."""

    location: str
    name: str
    schema: Mapping[str, Any]
    required: bool


@dataclass(frozen=True)
class Operation:
    """One operation of the document, its inputs and its body."""

    method: str
    path: str
    operation_id: str
    inputs: tuple[Input, ...]
    body_media_type: str | None
    body_schema: Mapping[str, Any] | None  # the whole body's, null allowed or not
    body_required: bool
    streams: bool

    @property
    def key(self) -> str:
        """`METHOD /path`, as the document names it."""
        return f"{self.method} {self.path}"


def resolved(document: Mapping[str, Any], node: Any) -> Any:
    """`node` with every local `$ref` of `document` replaced by what it points to."""
    if isinstance(node, list):
        return [resolved(document, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolved(document, {**target, **{k: v for k, v in node.items() if k != "$ref"}})
    return {key: resolved(document, value) for key, value in node.items()}


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of the document, in its order."""
    found = []
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                found.append(_operation(document, method.upper(), path, item[method]))
    return found


def _operation(
    document: Mapping[str, Any], method: str, path: str, spec: Mapping[str, Any]
) -> Operation:
    inputs = [
        Input(parameter["in"], parameter["name"], resolved(document, parameter["schema"]),
              bool(parameter.get("required")))
        for parameter in spec.get("parameters", [])
    ]  # fmt: skip
    media_type = body_schema = None
    body = spec.get("requestBody")
    if body is not None:
        media_type, content = next(iter(body["content"].items()))
        body_schema = resolved(document, content["schema"])
        schema = object_branch(body_schema)
        location = "form" if media_type == "application/x-www-form-urlencoded" else "body"
        required = set(schema.get("required", []))
        inputs += [
            Input(location, name, prop, name in required)
            for name, prop in schema.get("properties", {}).items()
        ]
    streams = any(STREAM_MEDIA_TYPE in response.get("content", {})
                  for response in spec.get("responses", {}).values())  # fmt: skip
    return Operation(method, path, spec["operationId"], tuple(inputs), media_type, body_schema,
                     bool(body and body.get("required")), streams)  # fmt: skip


def object_branch(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object schema of a body that may also be null (`anyOf: [object, null]`)."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "object" or "properties" in branch:
            return dict(branch)
    return schema


def boundary_values(schema: Mapping[str, Any]) -> list[Bound]:
    """The values at every bound `schema` states and one past each (conforming or not:
    `conforms` tells), without duplicates."""
    bounds: list[Bound] = []
    if "anyOf" in schema:
        for branch in schema["anyOf"]:
            bounds += boundary_values(branch)
    elif "enum" in schema:
        bounds += [Bound(f"enum-{value}", value) for value in schema["enum"]]
        outside = next(
            f"not-{value}" for value in schema["enum"] if f"not-{value}" not in schema["enum"]
        )
        bounds.append(Bound("not-in-enum", outside))
    else:
        bounds += _typed_bounds(schema)
    return _unique(bounds)


def _typed_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    kind = schema.get("type")
    if kind is None and _STRING_KEYWORDS & set(schema):
        kind = "string"  # `propertyNames` schemas say only what they bound
    if kind == "boolean":
        return [Bound("true", True), Bound("false", False)]
    if kind == "null":
        return [Bound("null", None)]
    of_kind = {"integer": _integer_bounds, "number": _number_bounds, "string": _string_bounds,
               "array": _array_bounds, "object": _object_bounds}  # fmt: skip
    return of_kind[kind](schema) if kind in of_kind else []


def _integer_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    bounds = []
    low = _lowest(schema, math.ceil, lambda x: math.floor(x) + 1)
    if low is not None:
        bounds += [Bound("minimum", low), Bound("below-minimum", low - 1)]
    high = _highest(schema, math.floor, lambda x: math.ceil(x) - 1)
    if high is not None:
        bounds += [Bound("maximum", high), Bound("above-maximum", high + 1)]
    return bounds


def _number_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    bounds = []
    low = _lowest(schema, float, lambda x: math.nextafter(x, math.inf))
    if low is not None:
        bounds += [Bound("minimum", low), Bound("below-minimum", math.nextafter(low, -math.inf))]
    high = _highest(schema, float, lambda x: math.nextafter(x, -math.inf))
    if high is not None:
        bounds += [Bound("maximum", high), Bound("above-maximum", math.nextafter(high, math.inf))]
    return bounds


def _lowest(schema: Mapping[str, Any], inclusive: Any, exclusive: Any) -> Any:
    # The least value that conforms: `minimum` itself, or the next one above `exclusiveMinimum`.
    if "exclusiveMinimum" in schema:
        return exclusive(schema["exclusiveMinimum"])
    return inclusive(schema["minimum"]) if "minimum" in schema else None


def _highest(schema: Mapping[str, Any], inclusive: Any, exclusive: Any) -> Any:
    if "exclusiveMaximum" in schema:
        return exclusive(schema["exclusiveMaximum"])
    return inclusive(schema["maximum"]) if "maximum" in schema else None


def _string_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    if schema.get("format") == "date-time":
        return [
            Bound("minimum", _time_text(EARLIEST)),
            Bound("below-minimum", _time_text(EARLIEST - dt.timedelta(seconds=1))),
            Bound("maximum", _time_text(LATEST - dt.timedelta(seconds=1))),
            Bound("above-maximum", _time_text(LATEST)),
        ]
    if schema.get("format") == "date":
        return [Bound("earliest-date", "0001-01-01"), Bound("latest-date", "9999-12-31"),
                Bound("no-such-date", "2026-02-30")]  # fmt: skip
    pattern = schema.get("pattern")
    text = _PatternText.of(pattern) if pattern else _PatternText("", "a", 0, None)
    shortest = max(schema.get("minLength", 0), text.shortest)
    longest = _min_known(schema.get("maxLength"), text.longest)
    bounds = [Bound("min-length", text.of_length(shortest))]
    if shortest > 0:
        bounds.append(Bound("below-min-length", text.of_length(shortest - 1)))
    if longest is not None:
        bounds += [Bound("max-length", text.of_length(longest)),
                   Bound("above-max-length", text.of_length(longest + 1))]  # fmt: skip
    if pattern:
        sample = text.of_length(max(shortest, 1))
        bad = next(c for c in _BAD_CHARACTERS if not re.fullmatch(pattern, sample[:-1] + c))
        bounds.append(Bound("bad-character", sample[:-1] + bad))
    return bounds


def _min_known(*values: int | None) -> int | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


@dataclass(frozen=True)
class _PatternText:
    """Strings a pattern matches: its literal prefix and then `filler` repeated, from
    `shortest` to `longest` characters (None: no limit)."""

    prefix: str
    filler: str
    shortest: int
    longest: int | None

    @classmethod
    def of(cls, pattern: str) -> _PatternText:
        prefix = re.match(r"\^([A-Za-z0-9]*)", pattern)
        literal = prefix[1] if prefix else ""
        for filler in _FILLERS:
            counts = [n for n in range(_PROBE_LENGTH + 1)
                      if re.fullmatch(pattern, literal + filler * n)]  # fmt: skip
            if counts:
                lengths = frozenset(len(literal) + n for n in counts)
                longest = None if _PROBE_LENGTH in counts else max(lengths)
                return cls(literal, filler, min(lengths), longest)
        raise ValueError(f"no string matching {pattern!r} found: teach api_bounds a filler")

    def of_length(self, length: int) -> str:
        """`length` characters: the prefix, then the filler (the pattern matches it at the
        lengths it allows, and refuses it at the others)."""
        if length <= len(self.prefix):
            return self.prefix[:length]
        return self.prefix + self.filler * (length - len(self.prefix))


def _array_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    item_schema = schema.get("items", {})
    item = sample(item_schema)
    fewest = schema.get("minItems", 0)
    bounds = [Bound("min-items", Copies(fewest, item))]
    if fewest > 0:
        bounds.append(Bound("below-min-items", Copies(fewest - 1, item)))
    if "maxItems" in schema:
        most = schema["maxItems"]
        bounds += [Bound("max-items", Copies(most, item)),
                   Bound("above-max-items", Copies(most + 1, item))]  # fmt: skip
    bounds += [
        Bound(f"item-{bound.label}", [bound.value]) for bound in boundary_values(item_schema)
    ]
    return bounds


def _object_bounds(schema: Mapping[str, Any]) -> list[Bound]:
    values = schema.get("additionalProperties")
    if not isinstance(values, dict):
        return []
    value = sample(values)
    bounds = [Bound("no-properties", {})]
    if "maxProperties" in schema:
        most = schema["maxProperties"]
        bounds += [
            Bound("max-properties", {f"k{n}": value for n in range(most)}),
            Bound("above-max-properties", {f"k{n}": value for n in range(most + 1)}),
        ]
    names = schema.get("propertyNames")
    if isinstance(names, dict):
        bounds += [Bound(f"name-{bound.label}", {bound.value: value})
                   for bound in boundary_values(names) if isinstance(bound.value, str)]  # fmt: skip
    bounds += [
        Bound(f"value-{bound.label}", {"k": bound.value}) for bound in boundary_values(values)
    ]
    return bounds


def sample(schema: Mapping[str, Any]) -> Any:
    """A value that conforms to `schema`: one at a bound when it has any."""
    for bound in boundary_values(schema):
        if not isinstance(bound.value, Copies) and conforms(schema, bound.value):
            return bound.value
    kind = schema.get("type")
    defaults = {"number": 1.0, "integer": 1, "string": "a", "boolean": True, "array": [],
                "object": {}}  # fmt: skip
    return defaults.get(kind) if isinstance(kind, str) else None


def _unique(bounds: list[Bound]) -> list[Bound]:
    seen: set[str] = set()
    labels: set[str] = set()
    kept = []
    for bound in bounds:
        key = repr((type(bound.value).__name__, bound.value))
        if key in seen:
            continue
        seen.add(key)
        label = bound.label
        while label in labels:
            label += "'"
        labels.add(label)
        kept.append(Bound(label, bound.value))
    return kept


def _time_text(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_time(text: str) -> bool:
    # RFC 3339, between the times the platform holds (docs/api.md).
    match = re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", text)
    if match is None:
        return False
    try:
        at = dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
        return EARLIEST <= at.astimezone(dt.UTC) < LATEST
    except (ValueError, OverflowError):
        return False


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d\d-\d\d", text) is not None


@cache
def _validator(schema_text: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(
        json.loads(schema_text), validate_formats=True,
        formats={"date-time": _is_time, "date": _is_date},
    )  # fmt: skip


def conforms(schema: Mapping[str, Any], value: Any) -> bool:
    """Whether `value` is one `schema` allows (a `Copies` as that many valid items)."""
    if isinstance(value, Copies):
        value = [value.fallback] * value.count
    return _validator(json.dumps(schema, sort_keys=True)).is_valid(value)


def in_bounds(schema: Mapping[str, Any]) -> Iterator[Bound]:
    """The boundary values of `schema` that conform to it."""
    for bound in boundary_values(schema):
        if conforms(schema, bound.value):
            yield bound


@dataclass(frozen=True)
class Seeded:
    """The rows a valid request names: a site, an elevator of it, and a user who signs in
    with `password`."""

    site: str
    elevator: str
    username: str
    password: str


def _fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _step(seeded: Seeded) -> dict[str, Any]:
    return {"note": "boundary check"}


# A valid body of every operation that takes one, naming seeded rows and fresh ids; a test
# checks that it lists exactly the operations of the document that take a body.
VALID_BODIES: Final[Mapping[str, Callable[[Seeded], dict[str, Any]]]] = {
    "POST /api/v1/auth/token": lambda s: {"username": s.username, "password": s.password},
    "POST /api/v1/users": lambda s: {"username": _fresh("bd"), "role": "crew", "sites": [s.site]},
    "PUT /api/v1/users/{username}": lambda s: {"full_name": "Target", "sites": [s.site]},
    "POST /api/v1/elevators": lambda s: {
        "id": _fresh("bd-el"), "site_id": s.site, "building": "B", "lowest_floor": 1,
        "highest_floor": 6, "rated_speed_mps": 1.0, "rated_load_kg": 630,
    },
    "PUT /api/v1/elevators/{elevator_id}": lambda s: {"building": "Renamed"},
    "POST /api/v1/alerts/{alert_id}/ack": _step,
    "POST /api/v1/alerts/{alert_id}/on-site": _step,
    "POST /api/v1/alerts/{alert_id}/resolve": _step,
    "POST /api/v1/alerts/{alert_id}/false-alarm": _step,
    "POST /api/v1/maintenance": lambda s: {
        "elevator_id": s.elevator, "kind": "routine", "summary": "boundary check",
        "performed_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
    },
}  # fmt: skip


def with_value(body: Mapping[str, Any], name: str, value: Any) -> dict[str, Any]:
    """`body` with property `name` set to `value` (left out for `ABSENT`; a `Copies` as
    copies of the body's own first item when it has one)."""
    if isinstance(value, Copies):
        usual = body.get(name)
        item = usual[0] if isinstance(usual, list) and usual else value.fallback
        value = [item] * value.count
    changed = {key: item for key, item in body.items() if key != name}
    if value is not ABSENT:
        changed[name] = value
    return changed
