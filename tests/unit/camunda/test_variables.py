"""Camunda's typed variables both ways (protocol doc, section 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from faena.camunda.client.engine import engine_root
from faena.camunda.variables import (
    FileValue,
    VariableError,
    format_date,
    from_typed,
    parse_date,
    plain_map,
    to_typed,
)


@pytest.mark.parametrize(
    ("value", "type_name", "wire"),
    [
        (True, "Boolean", True),
        (5, "Integer", 5),
        (2**40, "Long", 2**40),
        (1.5, "Double", 1.5),
        ("x", "String", "x"),
        (None, "Null", None),
        ({"a": [1]}, "Json", '{"a":[1]}'),
        (b"\x00\x01", "Bytes", "AAE="),
        (datetime(2025, 1, 31, 12, tzinfo=UTC), "Date", "2025-01-31T12:00:00.000+0000"),
    ],
)
def test_python_values_are_sent_typed(value: object, type_name: str, wire: object) -> None:
    assert to_typed(value) == {"type": type_name, "value": wire, "valueInfo": {}}


def test_round_trip_to_rich_values() -> None:
    for value in (True, 5, 2**40, 1.5, "x", None, {"a": [1]}, b"\x00"):
        assert from_typed("v", to_typed(value)) == value
    when = datetime(2025, 1, 31, 12, 0, 0, 123000, tzinfo=UTC)
    assert from_typed("d", to_typed(when)) == when


def test_type_names_ignore_case_and_untyped_values_are_inferred() -> None:
    assert from_typed("n", {"type": "integer", "value": 2}) == 2
    assert from_typed("n", {"type": "INTEGER", "value": "7"}) == 7
    assert plain_map({"a": {"value": 1}, "b": {"value": "s"}, "c": {"value": {"k": 1}}}) == {
        "a": 1,
        "b": "s",
        "c": {"k": 1},
    }


def test_bad_variables_name_the_problem() -> None:
    with pytest.raises(VariableError, match="Unsupported value type 'Money'"):
        plain_map({"x": {"type": "Money", "value": 1}})
    with pytest.raises(VariableError, match="Cannot convert"):
        plain_map({"x": {"type": "Integer", "value": 2**40}})
    with pytest.raises(VariableError, match="String value"):
        plain_map({"x": {"type": "Json", "value": {"a": 1}}})
    with pytest.raises(VariableError, match="base64"):
        plain_map({"x": {"type": "Bytes", "value": "***"}})
    with pytest.raises(VariableError):
        plain_map(["not", "a", "map"])


def test_files_accept_both_mimetype_spellings() -> None:
    raw = {"type": "file", "value": "aGk=", "valueInfo": {"filename": "a.txt", "mimetype": "t"}}
    assert from_typed("f", raw) == FileValue("a.txt", "t", None, b"hi")
    assert plain_map({"f": raw}) == {"f": {"filename": "a.txt", "mimeType": "t", "content": "aGk="}}


def test_dates() -> None:
    assert format_date(0.0) == "1970-01-01T00:00:00.000+0000"
    assert parse_date("2025-01-31T12:00:00.000+0200").utcoffset() is not None
    assert parse_date("2025-01-31T10:00:00Z") == parse_date("2025-01-31T10:00:00.000+0000")
    with pytest.raises(VariableError, match="yyyy-MM-dd"):
        parse_date("yesterday")


def test_the_seeds_base_url_reaches_engine_rest() -> None:
    assert engine_root("http://camunda:8080") == "http://camunda:8080/engine-rest"
    assert engine_root("http://h:8080/engine-rest/") == "http://h:8080/engine-rest"
    assert engine_root("http://h/x", "other") == "http://h/x/engine/other"
