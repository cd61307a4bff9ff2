"""A small REST client for the envapi's control API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from netgym.errors import NetgymError, ServerUnavailableError, error_from_dict


class RestClient:
    """Calls ``/v1/...`` on one envapi with the token, turning error bodies into exceptions."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 180.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON reply.

        Raises:
            ServerUnavailableError: when the envapi cannot be reached.
            NetgymError: the typed error the envapi answered with.
        """
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _error_from_reply(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnavailableError(
                f"cannot reach the envapi at {self.url} ({reason}); is it running? "
                "Start it with `netgym-envapi` or `docker compose up`, or set NETGYM_URL"
            ) from None


def _error_from_reply(exc: urllib.error.HTTPError) -> NetgymError:
    try:
        payload = json.loads(exc.read())
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            return error_from_dict(payload["error"])
    except (ValueError, OSError):
        pass
    return NetgymError(f"the envapi answered HTTP {exc.code} {exc.reason}")
