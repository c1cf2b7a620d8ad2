"""Arbitrary YAML and mutated answers: the only outcomes are a model or a clean error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer.answers import Answers, parse_answers
from installer.problems import ProblemList

VALID = (Path(__file__).resolve().parent.parent / "examples" / "answers.yaml").read_text()
VALID_DATA = yaml.safe_load(VALID)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["10.30.217.20", "kn0", "etcd", "/dev/sdb", "1.35", "::1", "10.0.0.0/8", "FMP_X"]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=25,
)


def outcome(text: str) -> None:
    try:
        result = parse_answers(text, "fuzz.yaml")
    except ProblemList as exc:
        assert exc.problems, "an error must say what is wrong"
        for p in exc.problems:
            assert p.file == "fuzz.yaml"
            assert p.message
            assert "Traceback" not in str(p)
    else:
        assert isinstance(result, Answers)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    outcome(text)


@settings(max_examples=200, deadline=None)
@given(values)
def test_arbitrary_yaml_documents(data: Any) -> None:
    outcome(yaml.safe_dump(data, allow_unicode=True))


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(VALID_DATA) if p]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    import copy

    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), st.one_of(values, st.just(_DELETE)))
def test_mutated_valid_answers(path: tuple[Any, ...], value: Any) -> None:
    outcome(yaml.safe_dump(_set(VALID_DATA, path, value), allow_unicode=True))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.text(max_size=8))
def test_spliced_valid_text(pos: int, junk: str) -> None:
    outcome(VALID[:pos] + junk + VALID[pos:])


def test_alias_bomb_is_a_clean_error() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):
        prev = "a" if i == 1 else f"b{i - 1}"
        bomb += f"b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    try:
        parse_answers(bomb, "fuzz.yaml")
    except ProblemList as exc:
        assert "more than" in str(exc)
    else:
        raise AssertionError("expected a clean error")


def test_python_tags_are_refused() -> None:
    try:
        parse_answers("cluster: !!python/object/apply:os.system ['true']\n", "fuzz.yaml")
    except ProblemList as exc:
        assert "fuzz.yaml:1:10" in str(exc)
    else:
        raise AssertionError("expected a clean error")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000 + "]" * 1000,
        "{a: " * 1000 + "1" + "}" * 1000,
        "".join("  " * i + "-\n" for i in range(1000)),
        "cluster:\n" + "".join("  " * i + "  a:\n" for i in range(1000)),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists", "block-mappings"],
)
def test_deep_nesting_is_a_clean_error(text: str) -> None:
    # PyYAML composes nested collections recursively: ~500 levels exhaust the stack.
    with pytest.raises(ProblemList) as info:
        parse_answers(text, "fuzz.yaml")
    (problem,) = info.value.problems
    assert problem.file == "fuzz.yaml" and problem.line is not None
    assert problem.message == "the document is nested too deeply"
