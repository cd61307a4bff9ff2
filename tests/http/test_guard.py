"""The token check that every REST service of netgym shares."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from netgym_http.guard import token_matches

TOKEN = SecretStr("s3cret")


@pytest.mark.parametrize(
    "authorization", ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret", " Bearer s3cret "]
)
def test_the_token_is_found_as_http_writes_it(authorization: str) -> None:
    assert token_matches(TOKEN, authorization)


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer ", "Bearer s3cre", "Basic s3cret", "s3cret"]
)
def test_anything_else_is_refused(authorization: str | None) -> None:
    assert not token_matches(TOKEN, authorization)


def test_no_token_set_lets_everyone_in() -> None:
    assert token_matches(None, None)
