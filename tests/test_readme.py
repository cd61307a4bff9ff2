"""The README's client snippet runs as written against a live envapi."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import EnvApi

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_client_snippet_runs(envapi: EnvApi, monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    assert 'netgym.make("CartPole-v1"' in snippet and '"ALE/Pong-v5"' in snippet
    monkeypatch.setenv("NETGYM_TOKEN", envapi.token or "")
    namespace: dict[str, object] = {}
    exec(snippet.replace("http://127.0.0.1:8000", envapi.url), namespace)
    assert namespace["obs"].shape == (8, 210, 160, 3)  # type: ignore[attr-defined]
