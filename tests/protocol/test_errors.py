"""Errors as they travel: rebuilt from a peer's code, and pickled whole."""

from __future__ import annotations

import copy
import pickle

from netgym.errors import EnvError, NetgymError, PeerError, error_from_dict


def test_a_known_code_gives_its_class() -> None:
    error = error_from_dict({"code": "env_error", "message": "m", "details": {"a": 1}})
    assert type(error) is EnvError and error.details == {"a": 1}
    assert type(error_from_dict({"code": "internal", "message": "m"})) is NetgymError


def test_an_unknown_code_is_kept_and_survives_pickling_and_copies() -> None:
    # A service's own code (the emulator's game_error, say): never read as "internal".
    error = error_from_dict({"code": "game_error", "message": "m", "details": {"line": 3}})
    assert isinstance(error, PeerError) and error.code == "game_error"
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert isinstance(again, PeerError)
        assert again.to_dict() == {"code": "game_error", "message": "m", "details": {"line": 3}}
