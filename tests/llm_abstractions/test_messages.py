"""Message validation and the two helpers providers use to fit their wire formats."""

from __future__ import annotations

from typing import Any

import pytest

from coditect_core.errors import LlmRequestError
from coditect_core.llm_abstractions.messages import (
    merge_consecutive,
    normalize_messages,
    split_system,
)


def test_plain_string_is_one_user_turn() -> None:
    assert normalize_messages("hello") == [{"role": "user", "content": "hello"}]


def test_list_is_copied_and_extra_keys_dropped() -> None:
    given: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "bob"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": ""},
    ]
    out = normalize_messages(given)
    assert out == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": ""},
    ]
    out[0]["content"] = "changed"
    assert given[0]["content"] == "be brief"


def test_tuple_is_accepted() -> None:
    assert normalize_messages(({"role": "user", "content": "x"},)) == [
        {"role": "user", "content": "x"}
    ]


def test_empty_list_is_refused() -> None:
    with pytest.raises(LlmRequestError, match="empty"):
        normalize_messages([])


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            [{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}],
            "messages[1].role",
        ),
        ([{"role": "user", "content": "ok"}, {"content": "x"}], "messages[1] has no 'role'"),
        ([{"role": "user", "content": 42}], "messages[0].content must be a string, not int"),
        ([{"role": "user", "content": None}], "messages[0].content must be a string"),
        ([{"role": "user", "content": ["a"]}], "messages[0].content must be a string, not list"),
        ([{"role": "user"}], "messages[0] has no 'content'"),
        ([{"role": "user", "content": "ok"}, "just text"], "messages[1] must be a mapping"),
        ([{"role": "user", "content": "ok"}, None], "messages[1] must be a mapping"),
    ],
)
def test_bad_item_is_named_by_index(messages: list[Any], fragment: str) -> None:
    with pytest.raises(LlmRequestError) as info:
        normalize_messages(messages, provider="fake")
    assert fragment in str(info.value)
    assert info.value.provider == "fake"
    assert not info.value.retryable


def test_unknown_role_lists_the_valid_ones() -> None:
    with pytest.raises(LlmRequestError) as info:
        normalize_messages([{"role": "function", "content": "x"}])
    assert "'function'" in str(info.value)
    for role in ("system", "user", "assistant", "tool"):
        assert role in str(info.value)


@pytest.mark.parametrize("messages", [{"role": "user", "content": "x"}, 42, b"bytes", None])
def test_wrong_container_is_refused(messages: Any) -> None:
    with pytest.raises(LlmRequestError, match="string or a list"):
        normalize_messages(messages)


def test_only_system_messages_are_refused() -> None:
    with pytest.raises(LlmRequestError, match="only system"):
        normalize_messages([{"role": "system", "content": "be brief"}])


def test_split_system_joins_every_system_message() -> None:
    msgs = normalize_messages(
        [
            {"role": "system", "content": "one"},
            {"role": "user", "content": "q"},
            {"role": "system", "content": "two"},
            {"role": "assistant", "content": "a"},
        ]
    )
    system, rest = split_system(msgs)
    assert system == "one\n\ntwo"
    assert rest == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_split_system_without_system() -> None:
    msgs = normalize_messages("q")
    assert split_system(msgs) == (None, [{"role": "user", "content": "q"}])


def test_merge_consecutive_joins_same_role_turns() -> None:
    msgs = normalize_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"},
        ]
    )
    merged = merge_consecutive(msgs)
    assert merged == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd"},
        {"role": "user", "content": "e"},
    ]
    assert msgs[0] == {"role": "user", "content": "a"}  # the input is left alone


def test_merge_consecutive_starts_with_the_user() -> None:
    merged = merge_consecutive(
        normalize_messages(
            [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}]
        )
    )
    assert [m["role"] for m in merged] == ["user", "assistant", "user"]
    assert merged[0]["content"]  # never empty: strict APIs refuse empty turns
