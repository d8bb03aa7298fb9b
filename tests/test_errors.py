"""The error tree: its shape, its retryable defaults, and that errors survive pickling."""

from __future__ import annotations

import pickle

import pytest

from coditect_core import errors
from coditect_core.errors import (
    AgentError,
    CheckFailedError,
    CoditectError,
    LlmAuthenticationError,
    LlmConfigurationError,
    LlmConnectionError,
    LlmContentFilterError,
    LlmContextLengthError,
    LlmError,
    LlmJournalMissError,
    LlmNotInstalledError,
    LlmPermissionError,
    LlmRateLimitError,
    LlmRequestError,
    LlmResponseError,
    LlmServerError,
    LlmTimeoutError,
    MergeConflictError,
    PlanDocumentError,
    PlanError,
    PlanRejectedError,
    ProjectFileError,
    RunLockedError,
    SchedulingError,
    StateError,
    WorkAtRiskError,
    WorkspaceError,
)

PARENTS: dict[type[Exception], type[Exception]] = {
    CoditectError: Exception,
    LlmError: CoditectError,
    LlmConfigurationError: LlmError,
    LlmNotInstalledError: LlmConfigurationError,
    LlmJournalMissError: LlmConfigurationError,
    LlmAuthenticationError: LlmError,
    LlmPermissionError: LlmError,
    LlmRequestError: LlmError,
    LlmContextLengthError: LlmRequestError,
    LlmRateLimitError: LlmError,
    LlmTimeoutError: LlmError,
    LlmConnectionError: LlmError,
    LlmServerError: LlmError,
    LlmContentFilterError: LlmError,
    LlmResponseError: LlmError,
    ProjectFileError: CoditectError,
    SchedulingError: CoditectError,
    AgentError: CoditectError,
    PlanError: CoditectError,
    PlanDocumentError: PlanError,
    PlanRejectedError: PlanError,
    StateError: CoditectError,
    RunLockedError: StateError,
    WorkAtRiskError: CoditectError,
    WorkspaceError: CoditectError,
    MergeConflictError: WorkspaceError,
    CheckFailedError: CoditectError,
}

RETRYABLE = {
    LlmRateLimitError,
    LlmTimeoutError,
    LlmConnectionError,
    LlmServerError,
    LlmResponseError,
}


@pytest.mark.parametrize(("cls", "parent"), PARENTS.items(), ids=lambda c: c.__name__)
def test_tree_shape(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__bases__ == (parent,)


def test_every_original_type_is_in_the_docstring_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in PARENTS:
        assert cls.__name__ in doc, cls.__name__


@pytest.mark.parametrize(
    "cls", [c for c in PARENTS if issubclass(c, LlmError)], ids=lambda c: c.__name__
)
def test_retryable_defaults(cls: type[LlmError]) -> None:
    err = cls("x")
    assert err.retryable is (cls in RETRYABLE)
    assert err.attempts == 1


def test_retryable_can_be_overridden_per_instance() -> None:
    assert LlmRequestError("408", status_code=408, retryable=True).retryable is True
    assert LlmServerError("501", status_code=501, retryable=False).retryable is False
    assert LlmServerError("500").retryable is True  # the class default is untouched


def test_str_names_provider_and_status() -> None:
    err = LlmAuthenticationError("key refused", provider="openai-gpt", status_code=401)
    assert str(err) == "[openai-gpt] key refused (HTTP 401)"
    assert str(LlmError("plain")) == "plain"


def test_rate_limit_defaults() -> None:
    err = LlmRateLimitError("slow down", retry_after=1.5)
    assert (err.status_code, err.retry_after, err.retryable) == (429, 1.5, True)
    assert "retry_after=1.5" in repr(err)


@pytest.mark.parametrize(
    "err",
    [
        LlmRateLimitError("slow", provider="anthropic-claude", status_code=429, retry_after=2.5),
        LlmServerError("overloaded", provider="anthropic-claude", status_code=529),
        LlmRequestError("timeout", provider="openai-gpt", status_code=408, retryable=True),
        LlmNotInstalledError("pip install 'coditect-core[openai]'", provider="openai-gpt"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip_keeps_attributes(err: LlmError) -> None:
    err.attempts = 3
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.message == err.message
    assert back.provider == err.provider
    assert back.status_code == err.status_code
    assert back.retryable == err.retryable
    assert back.attempts == 3
    assert getattr(back, "retry_after", None) == getattr(err, "retry_after", None)
    assert str(back) == str(err)


def test_pickle_round_trip_of_project_file_error_keeps_its_text() -> None:
    err = ProjectFileError("unknown agent 'x'", path="p.yaml", line=7, field="agent")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "p.yaml:7: unknown agent 'x'"
    assert (back.path, back.line, back.field) == ("p.yaml", 7, "agent")


def test_pickle_round_trip_of_a_merge_conflict_keeps_its_files() -> None:
    err = MergeConflictError("conflict in a.py", branch="b", files=("a.py",))
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.branch, back.files) == ("conflict in a.py", "b", ("a.py",))
