"""A small JSON Schema (draft 2020-12) validator for the keywords the vector schema uses.

The project may not depend on the ``jsonschema`` package, so this module
implements exactly the subset ``schema/vectors.v1.schema.json`` needs:

    type (a name or a list of names), const, enum, required, properties,
    additionalProperties (true/false or a schema), propertyNames, items,
    prefixItems, minItems, maxItems, uniqueItems, minLength, maxLength, pattern,
    minimum, maximum, exclusiveMinimum, oneOf, $ref (only "#/$defs/NAME") and
    $defs, plus the annotations $schema, $id, $comment, title and description.

Any other keyword makes :class:`Validator` raise :class:`SchemaError` when it
is built: a keyword this module does not implement would otherwise be
silently ignored, and the schema would promise more than is checked.

Errors name the JSON path of the offending value (``$.vectors[3].steps[0]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SchemaError", "ValidationError", "Validator", "format_path"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"

Location = tuple[str | int, ...]

_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_ANNOTATIONS = frozenset({"$comment", "title", "description"})
_ROOT_ONLY = frozenset({"$schema", "$id", "$defs"})
_KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "required",
        "properties",
        "additionalProperties",
        "propertyNames",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "oneOf",
        "$ref",
    }
)
_REF = re.compile(r"^#/\$defs/([^/]+)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SchemaError(Exception):
    """The schema is malformed, or uses something this validator does not implement."""


@dataclass(frozen=True, slots=True)
class ValidationError:
    """One way an instance fails the schema."""

    location: Location  # keys and indexes from the document root
    message: str

    @property
    def path(self) -> str:
        return format_path(self.location)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def format_path(location: Location) -> str:
    """A location as a JSON path: ``("vectors", 3, "a.b.")`` -> ``$.vectors[3]["a.b."]``."""
    out = "$"
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


# --- JSON values ----------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but true is not a number in JSON.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "number":
        return _is_number(value)
    # "integer": any number with a zero fractional part, so 1.0 counts (2020-12).
    return _is_number(value) and (isinstance(value, int) or float(value).is_integer())


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if _has_type(value, "integer"):
        return "integer"
    if _is_number(value):
        return "number"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema defines it: 1 == 1.0, but 1 != true and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# --- patterns -------------------------------------------------------------------------

# ECMA-262 \s: ASCII whitespace plus Unicode spaces and line terminators.
_ECMA_SPACE = (
    "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_OUTSIDE = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[A-Za-z0-9_]",
    "W": "[^A-Za-z0-9_]",
    "s": f"[{_ECMA_SPACE}]",
    "S": f"[^{_ECMA_SPACE}]",
}
_INSIDE = {"d": "0-9", "w": "A-Za-z0-9_", "s": _ECMA_SPACE}
_PLAIN_ESCAPES = frozenset("nrtfvbB0123456789")


def translate_pattern(pattern: str) -> str:
    """An ECMA-262 regular expression as a Python one with the same meaning.

    The differences that matter for schemas: ``$`` means end of input (Python's
    also matches before a final newline), ``.`` excludes every line terminator,
    and ``\\d``, ``\\w``, ``\\s`` have their ECMA sets. Constructs with no
    Python equivalent, or whose meaning differs, raise :class:`SchemaError`.
    """
    out: list[str] = []
    in_class = False
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise SchemaError(f"pattern {pattern!r}: ends with a lone backslash")
            e = pattern[i + 1]
            i += 2
            table = _INSIDE if in_class else _OUTSIDE
            if e in table:
                out.append(table[e])
            elif e in "DWS":  # negated sets inside a class: no Python equivalent
                raise SchemaError(f"pattern {pattern!r}: \\{e} inside [...] is not supported")
            elif e in ("u", "x"):
                width = 4 if e == "u" else 2
                digits = pattern[i : i + width]
                if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise SchemaError(f"pattern {pattern!r}: bad \\{e} escape")
                out.append(f"\\{e}{digits}")
                i += width
            elif e in _PLAIN_ESCAPES or not e.isalnum():
                out.append("\\" + e)
            else:
                raise SchemaError(f"pattern {pattern!r}: escape \\{e} is not supported")
            continue
        if in_class:
            if c == "]":
                in_class = False
                out.append(c)
            elif c in "[&~|":  # Python would warn about (future) set operations
                out.append("\\" + c)
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            start = "[^" if pattern.startswith("[^", i) else "["
            if pattern.startswith(start + "]", i):
                # ECMA: [] matches nothing and [^] anything; Python reads "]" as a literal.
                raise SchemaError(f"pattern {pattern!r}: empty classes are not supported")
            out.append(start)
            in_class = True
            i += len(start)
            continue
        if c == "(" and pattern.startswith("(?", i):
            for prefix in ("(?:", "(?=", "(?!", "(?<=", "(?<!"):
                if pattern.startswith(prefix, i):
                    out.append(prefix)
                    i += len(prefix)
                    break
            else:
                if pattern.startswith("(?<", i):
                    out.append("(?P<")  # a named group
                    i += 3
                else:
                    raise SchemaError(f"pattern {pattern!r}: group syntax at {i} not supported")
            continue
        if c == "$":
            out.append("\\Z")
        elif c == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
        else:
            out.append(c)
        i += 1
    if in_class:
        raise SchemaError(f"pattern {pattern!r}: unterminated [...]")
    return "".join(out)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        # ASCII: \b and \B then use ECMA's (ASCII) notion of a word character.
        return re.compile(translate_pattern(pattern), re.ASCII)
    except re.error as exc:
        raise SchemaError(f"pattern {pattern!r} does not compile: {exc}") from None


# --- the validator --------------------------------------------------------------------


class Validator:
    """Validates JSON values (as ``json.loads`` returns them) against one schema.

    Building it checks the whole schema: an unknown keyword, a malformed
    keyword value, a pattern that does not compile or a ``$ref`` that does
    not resolve raises :class:`SchemaError` then, not halfway through a file.
    """

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._defs: dict[str, Any] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        if isinstance(schema, dict):
            defs = schema.get("$defs", {})
            if not isinstance(defs, dict):
                raise SchemaError("#/$defs: must be an object")
            self._defs = defs
        self._check(schema, "#", root=True)

    # --- checking the schema ----------------------------------------------------------

    def _check(self, schema: Any, where: str, *, root: bool = False) -> None:
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise SchemaError(f"{where}: a schema must be an object or a boolean")
        for key, value in schema.items():
            here = f"{where}/{key}"
            if key in _ROOT_ONLY:
                if not root:
                    raise SchemaError(f"{here}: only supported at the schema root")
                if key == "$schema" and value != DIALECT:
                    raise SchemaError(f"{here}: only {DIALECT} is supported")
                if key == "$id" and not isinstance(value, str):
                    raise SchemaError(f"{here}: must be a string")
                if key == "$defs":
                    for name, sub in value.items():
                        self._check(sub, f"{here}/{name}")
            elif key in _ANNOTATIONS:
                if not isinstance(value, str):
                    raise SchemaError(f"{here}: must be a string")
            elif key in _KEYWORDS:
                self._check_keyword(key, value, here)
            else:
                raise SchemaError(f"{here}: unknown keyword {key!r} (not implemented here)")

    def _check_keyword(self, key: str, value: Any, here: str) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise SchemaError(f"{here}: must be {what}")

        if key == "type":
            names = value if isinstance(value, list) else [value]
            need(
                bool(names)
                and all(isinstance(t, str) and t in _TYPES for t in names)
                and len(set(names)) == len(names),
                f"a type name or a non-empty list of distinct ones ({sorted(_TYPES)})",
            )
        elif key == "enum":
            need(isinstance(value, list) and bool(value), "a non-empty array")
        elif key == "required":
            need(
                isinstance(value, list)
                and all(isinstance(v, str) for v in value)
                and len(set(value)) == len(value),
                "an array of distinct strings",
            )
        elif key == "properties":
            need(isinstance(value, dict), "an object")
            for name, sub in value.items():
                self._check(sub, f"{here}/{name}")
        elif key in ("additionalProperties", "propertyNames", "items"):
            need(isinstance(value, (dict, bool)), "a schema (in 2020-12 items is one schema)")
            self._check(value, here)
        elif key in ("prefixItems", "oneOf"):
            need(isinstance(value, list) and bool(value), "a non-empty array of schemas")
            for index, sub in enumerate(value):
                self._check(sub, f"{here}/{index}")
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            need(_has_type(value, "integer") and value >= 0, "a non-negative integer")
        elif key == "uniqueItems":
            need(isinstance(value, bool), "a boolean")
        elif key == "pattern":
            need(isinstance(value, str), "a string")
            self._patterns[value] = compile_pattern(value)
        elif key in ("minimum", "maximum", "exclusiveMinimum"):
            need(_is_number(value), "a number")
        elif key == "$ref":
            need(isinstance(value, str), "a string")
            self._target(value, here)
        # const: any JSON value is fine.

    def _target(self, ref: str, where: str) -> Any:
        match = _REF.match(ref)
        if match is None:
            raise SchemaError(f"{where}: $ref {ref!r}: only '#/$defs/NAME' is supported")
        name = match.group(1).replace("~1", "/").replace("~0", "~")
        if name not in self._defs:
            raise SchemaError(f"{where}: $ref {ref!r} does not resolve")
        return self._defs[name]

    # --- validating instances ---------------------------------------------------------

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every way ``instance`` fails the schema (empty if it is valid)."""
        found: list[ValidationError] = []
        self._validate(self.schema, instance, (), found, frozenset())
        return found

    def is_valid(self, instance: Any) -> bool:
        return not self.errors(instance)

    def _validate(
        self,
        schema: Any,
        instance: Any,
        at: Location,
        out: list[ValidationError],
        refs: frozenset[tuple[str, Location]],
    ) -> None:
        if schema is True:
            return
        if schema is False:
            out.append(ValidationError(at, "no value is allowed here"))
            return
        if "$ref" in schema:
            ref = schema["$ref"]
            if (ref, at) in refs:  # a $ref cycle that consumes nothing would never end
                raise SchemaError(f"$ref {ref!r} loops back to itself at {format_path(at)}")
            self._validate(self._target(ref, "$ref"), instance, at, out, refs | {(ref, at)})
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_has_type(instance, t) for t in names):
                out.append(
                    ValidationError(
                        at, f"expected {' or '.join(names)}, got {_type_name(instance)}"
                    )
                )
                return  # every other keyword would only repeat this
        if "const" in schema and not json_equal(instance, schema["const"]):
            out.append(ValidationError(at, f"must be {_short(schema['const'])}"))
        if "enum" in schema and not any(json_equal(instance, v) for v in schema["enum"]):
            allowed = ", ".join(_short(v) for v in schema["enum"])
            out.append(ValidationError(at, f"{_short(instance)} is not one of {allowed}"))
        if isinstance(instance, dict):
            self._object(schema, instance, at, out, refs)
        elif isinstance(instance, list):
            self._array(schema, instance, at, out, refs)
        elif isinstance(instance, str):
            self._string(schema, instance, at, out)
        elif _is_number(instance):
            self._number(schema, instance, at, out)
        if "oneOf" in schema:
            self._one_of(schema["oneOf"], instance, at, out, refs)

    def _object(
        self,
        schema: Mapping[str, Any],
        instance: dict[str, Any],
        at: Location,
        out: list[ValidationError],
        refs: frozenset[tuple[str, Location]],
    ) -> None:
        for name in schema.get("required", ()):
            if name not in instance:
                out.append(ValidationError(at, f"missing required property {name!r}"))
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames", True)
        for key, value in instance.items():
            if names is not True:
                sub: list[ValidationError] = []
                self._validate(names, key, (*at, key), sub, refs)
                out.extend(ValidationError(e.location, f"property name: {e.message}") for e in sub)
            if key in properties:
                self._validate(properties[key], value, (*at, key), out, refs)
            elif extra is False:
                out.append(ValidationError(at, f"unexpected property {key!r}"))
            elif extra is not True:
                self._validate(extra, value, (*at, key), out, refs)

    def _array(
        self,
        schema: Mapping[str, Any],
        instance: list[Any],
        at: Location,
        out: list[ValidationError],
        refs: frozenset[tuple[str, Location]],
    ) -> None:
        if "minItems" in schema and len(instance) < schema["minItems"]:
            out.append(ValidationError(at, f"needs at least {schema['minItems']} item(s)"))
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            out.append(ValidationError(at, f"allows at most {schema['maxItems']} item(s)"))
        if schema.get("uniqueItems") is True:
            for j, later in enumerate(instance):
                first = next((i for i in range(j) if json_equal(instance[i], later)), None)
                if first is not None:
                    out.append(ValidationError(at, f"items {first} and {j} are equal"))
        prefix = schema.get("prefixItems", [])
        for index, item in enumerate(instance):
            if index < len(prefix):
                self._validate(prefix[index], item, (*at, index), out, refs)
            elif "items" in schema:
                self._validate(schema["items"], item, (*at, index), out, refs)

    def _string(
        self, schema: Mapping[str, Any], instance: str, at: Location, out: list[ValidationError]
    ) -> None:
        # len() counts code points, as JSON Schema does.
        if "minLength" in schema and len(instance) < schema["minLength"]:
            out.append(ValidationError(at, f"shorter than {schema['minLength']} characters"))
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            out.append(ValidationError(at, f"longer than {schema['maxLength']} characters"))
        if "pattern" in schema and not self._patterns[schema["pattern"]].search(instance):
            out.append(
                ValidationError(at, f"{_short(instance)} does not match {schema['pattern']!r}")
            )

    def _number(
        self, schema: Mapping[str, Any], instance: float, at: Location, out: list[ValidationError]
    ) -> None:
        if "minimum" in schema and instance < schema["minimum"]:
            out.append(ValidationError(at, f"{instance} is less than {schema['minimum']}"))
        if "maximum" in schema and instance > schema["maximum"]:
            out.append(ValidationError(at, f"{instance} is more than {schema['maximum']}"))
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            out.append(
                ValidationError(at, f"{instance} must be more than {schema['exclusiveMinimum']}")
            )

    def _one_of(
        self,
        alternatives: list[Any],
        instance: Any,
        at: Location,
        out: list[ValidationError],
        refs: frozenset[tuple[str, Location]],
    ) -> None:
        results: list[list[ValidationError]] = []
        for alternative in alternatives:
            sub: list[ValidationError] = []
            self._validate(alternative, instance, at, sub, refs)
            results.append(sub)
        matched = [i for i, sub in enumerate(results) if not sub]
        if len(matched) == 1:
            return
        if matched:
            which = ", ".join(str(i) for i in matched)
            out.append(
                ValidationError(
                    at, f"matches {len(matched)} oneOf alternatives ({which}); exactly one may"
                )
            )
            return
        # If exactly one alternative fits here and only fails deeper down, it is the one
        # the author meant: report its errors as they are. Otherwise say why each failed.
        deeper = [sub for sub in results if all(len(e.location) > len(at) for e in sub)]
        if len(deeper) == 1:
            out.extend(deeper[0])
            return
        reasons = "; ".join(f"[{i}] {sub[0]}" for i, sub in enumerate(results))
        out.append(ValidationError(at, f"matches none of the oneOf alternatives: {reasons}"))
