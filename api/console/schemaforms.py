"""HTML form fields from a command's params JSON Schema, and params from a submitted form.

Scalars (string, number, integer, boolean, enum) get an input of their own; anything else
(objects, arrays, references, a schema without properties) is a JSON text area. The
server's validation (the catalog's, as for the API) has the last word.
"""

import json
from dataclasses import dataclass
from typing import Any

PREFIX = "p."  # form field names of params: never clash with the form's own fields
WHOLE = "__params__"  # the one text area of a schema without properties


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # string, number, integer, boolean, enum, json
    required: bool
    default: Any
    description: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return ""
        return json.dumps(self.default) if self.kind == "json" else str(self.default)


def _kind(spec: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """The field kind of a property, the schema it came from, and whether null is allowed."""
    options = spec.get("anyOf")
    if isinstance(options, list):
        concrete = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        nullable = len(concrete) < len(options)
        if len(concrete) == 1:
            kind, inner, _ = _kind(concrete[0])
            return kind, inner, nullable
        return "json", spec, nullable
    if "enum" in spec and all(isinstance(v, str) for v in spec["enum"]):
        return "enum", spec, False
    type_ = spec.get("type")
    if type_ in ("string", "number", "integer", "boolean"):
        return str(type_), spec, False
    return "json", spec, False


def fields(schema: dict[str, Any]) -> list[FormField]:
    properties = schema.get("properties") or {}
    if not properties:
        return [FormField(WHOLE, "Params (a JSON object)", "json", False, {}, schema.get("description", ""))]
    required = set(schema.get("required") or ())
    out = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        kind, inner, nullable = _kind(spec)
        out.append(
            FormField(
                name=name,
                label=str(spec.get("title") or name),
                kind=kind,
                required=name in required and not nullable,
                default=spec.get("default"),
                description=str(spec.get("description") or ""),
                options=tuple(inner.get("enum") or ()),
                minimum=inner.get("minimum"),
                maximum=inner.get("maximum"),
            )
        )
    return out


def _value(field: FormField, raw: str) -> Any:
    if field.kind == "integer":
        return int(raw)
    if field.kind == "number":
        number = float(raw)
        return int(number) if number.is_integer() else number
    if field.kind == "json":
        return json.loads(raw)
    return raw


def params_from(form_fields: list[FormField], sent: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The params a form gave, and a message per field it could not read (by field name).

    An empty optional input is left out, so that the command's default applies.
    """
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in form_fields:
        if field.kind == "boolean":
            params[field.name] = sent.get(field.input_name) == "true"
            continue
        raw = sent.get(field.input_name, "").strip()
        if not raw:
            if field.required:
                errors[field.name] = "Required."
            continue
        try:
            params[field.name] = _value(field, raw)
        except ValueError as exc:
            errors[field.name] = f"Not {'JSON' if field.kind == 'json' else f'a valid {field.kind}'}: {exc}"
    if WHOLE in params:
        whole = params.pop(WHOLE)
        if isinstance(whole, dict):
            params.update(whole)
        else:
            errors[WHOLE] = 'Give a JSON object, like {"key": "value"}.'
    return params, errors


def errors_by_field(
    problems: list[dict[str, Any]] | None, detail: str, form_fields: list[FormField]
) -> dict[str, str]:
    """The API's field problems (``loc`` ending in ``params, <name>, …``) by form field;
    those of no field are under ``""``."""
    names = {f.name for f in form_fields}
    out: dict[str, str] = {}
    for problem in problems or []:
        loc = [str(p) for p in problem.get("loc", [])]
        after = loc[loc.index("params") + 1 :] if "params" in loc else []
        name = after[0] if after and after[0] in names else (WHOLE if WHOLE in names else "")
        out[name] = (out.get(name, "") + " " + str(problem.get("msg", ""))).strip()
    return out or {"": detail}
