"""The console's parts that need no services: templates, schema forms, static names, cookies."""

import subprocess
import sys

import pytest
from itsdangerous import BadSignature

from api.console import rendering, schemaforms, session
from api.console.rendering import STATIC_FILES, env, static_url

SIMULATE = {
    "properties": {
        "sleep_s": {"default": 0, "maximum": 3600, "minimum": 0, "title": "Sleep S", "type": "number"},
        "fail_times": {"default": 0, "title": "Fail Times", "type": "integer"},
        "mode": {"default": "sync", "enum": ["sync", "async"], "type": "string"},
        "crash": {"default": False, "type": "boolean"},
        "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "url": {"type": "string"},
    },
    "required": ["url"],
    "type": "object",
}


def test_every_template_compiles() -> None:
    names = env.list_templates()
    assert "executions.html" in names
    for name in names:
        env.get_template(name)


def test_fields_follow_the_schema() -> None:
    fields = {f.name: f for f in schemaforms.fields(SIMULATE)}
    assert {n: f.kind for n, f in fields.items()} == {
        "sleep_s": "number",
        "fail_times": "integer",
        "mode": "enum",
        "crash": "boolean",
        "tags": "json",
        "url": "string",
    }
    assert fields["mode"].options == ("sync", "async")
    assert fields["url"].required
    assert not fields["tags"].required


def test_params_from_a_form_leave_empty_optional_fields_to_their_defaults() -> None:
    fields = schemaforms.fields(SIMULATE)
    sent = {"p.sleep_s": "1.5", "p.fail_times": "", "p.mode": "async", "p.tags": '["a"]', "p.url": "http://x"}
    params, errors = schemaforms.params_from(fields, sent)
    assert errors == {}
    assert params == {"sleep_s": 1.5, "mode": "async", "crash": False, "tags": ["a"], "url": "http://x"}


def test_params_from_a_form_name_the_fields_they_cannot_read() -> None:
    fields = schemaforms.fields(SIMULATE)
    _params, errors = schemaforms.params_from(fields, {"p.fail_times": "two", "p.tags": "[", "p.url": ""})
    assert set(errors) == {"fail_times", "tags", "url"}


def test_a_schema_without_properties_is_one_json_object() -> None:
    fields = schemaforms.fields({"additionalProperties": True, "properties": {}, "type": "object"})
    assert [f.name for f in fields] == [schemaforms.WHOLE]
    assert schemaforms.params_from(fields, {"p.__params__": '{"a": 1}'}) == ({"a": 1}, {})
    assert set(schemaforms.params_from(fields, {"p.__params__": "[1]"})[1]) == {schemaforms.WHOLE}


def test_api_problems_are_shown_by_their_fields() -> None:
    fields = schemaforms.fields(SIMULATE)
    problems = [{"loc": ["body", "params", "sleep_s"], "msg": "99999 is greater than 3600"}]
    assert schemaforms.errors_by_field(problems, "detail", fields) == {
        "sleep_s": "99999 is greater than 3600"
    }
    assert schemaforms.errors_by_field([], "detail", fields) == {"": "detail"}


def test_static_names_carry_their_content_hash() -> None:
    url = static_url("htmx.min.js")
    name = url.rsplit("/", 1)[1]
    assert name.startswith("htmx.")
    assert name.endswith(".min.js")
    assert STATIC_FILES[name].name == "htmx.min.js"
    assert len(name.split(".")[1]) == 12


def test_a_session_cookie_holds_the_keys_hash_not_the_key() -> None:
    cookie = session.session_cookie("aq_secret-value")
    assert "aq_secret-value" not in cookie
    data = session._serializer().loads(cookie)
    assert set(data) == {"k", "c"}
    with pytest.raises(BadSignature):
        session._serializer().loads(cookie[:-2] + "xx")


def test_shortened_json_says_so() -> None:
    text, cut = rendering.pretty({"big": "x" * 10_000})
    assert cut
    assert len(text) == rendering.SHOWN_JSON_CHARS
    assert rendering.pretty({"a": 1}) == ('{\n  "a": 1\n}', False)


@pytest.mark.parametrize(("flag", "status"), [("1", 200), ("0", 404)])
def test_agentq_ui_turns_the_console_on_and_off(flag: str, status: int) -> None:
    code = (
        "from starlette.testclient import TestClient; from api.main import app;"
        "print(TestClient(app).get('/ui/sign-in').status_code)"
    )
    env = {"AGENTQ_UI": flag, "PATH": "", "AGENTQ_ADMIN_API_KEY": "k"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(status)
