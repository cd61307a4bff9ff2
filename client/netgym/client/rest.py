"""A small REST client for the envapi's and the emulator service's control APIs (stdlib only)."""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

from netgym.errors import (
    InvalidRequestError,
    NetgymError,
    ServerUnavailableError,
    error_from_dict,
)

ENVAPI = (
    "envapi",
    "Start it with `scripts/run.sh` (it starts the emulator service for NES games too), "
    "`netgym-envapi` or `docker compose up`, or set NETGYM_URL",
)
EMULATOR = (
    "emulator service",
    "Start it with `netgym-emulator` or `docker compose up`, or set NETGYM_EMULATOR_URL",
)


def emulator_token() -> str | None:
    """The token for the emulator service's instances: ``$NETGYM_EMULATOR_TOKEN``, if set."""
    return os.environ.get("NETGYM_EMULATOR_TOKEN", "").strip() or None


_HEADER_TEXT = re.compile(r"[\x20-\x7e\xa0-\xff]+")  # printable Latin-1: what a header carries


class RestClient:
    """Calls ``/v1/...`` on one service with the token, turning error bodies into exceptions.

    ``service`` names the service and how to start it, for the errors
    (``ENVAPI`` or ``EMULATOR``).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout_s: float = 180.0,
        service: tuple[str, str] = ENVAPI,
    ) -> None:
        if "://" not in url:
            raise ServerUnavailableError(
                f"{url!r} is no URL: write it with its scheme, e.g. http://{url}"
            )
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.service, self.start_hint = service

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        expect: tuple[str, ...] = (),
    ) -> Any:
        """Send one request; return the decoded JSON reply.

        ``timeout_s`` replaces the client's own timeout for this request. A
        reply that is not an object with every key of ``expect`` is not the
        service's (another server answers there).

        Raises:
            ServerUnavailableError: when the service cannot be reached or does not answer.
            NetgymError: the typed error the service answered with.
        """
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            try:
                data = json.dumps(body).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(
                    f"{method} {path}: the request cannot be sent as JSON ({exc}); give plain "
                    "numbers, strings, bools, lists and dicts (int(x), not a numpy value; "
                    "a wrapper by its name, not its class)"
                ) from None
            headers["Content-Type"] = "application/json"
        if self.token:
            if not _HEADER_TEXT.fullmatch(self.token):
                raise InvalidRequestError(
                    "the token holds characters an HTTP header cannot carry (a line end, "
                    "or one outside Latin-1): check token=... or NETGYM_TOKEN"
                )
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                reply = json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            error = _error_from_reply(exc)
            if error is None:
                raise self._not_netgym_error(exc) from None
            if error.code in ("not_found", "method_not_allowed"):  # a netgym service, not this
                raise self._not_the_api(f"it has no {method} {path}") from None
            raise error from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise ServerUnavailableError(
                    f"the {self.service} at {self.url} did not answer {method} {path} within "
                    f"{timeout:g} s: it is hung, stopped or overloaded"
                ) from None
            if isinstance(reason, ConnectionResetError):  # gone meanwhile, or no HTTP there
                raise ServerUnavailableError(
                    f"the {self.service} at {self.url} dropped the connection with no HTTP "
                    f"reply to {method} {path}: it stopped or restarted meanwhile, or what "
                    f"answers there is not the {self.service}'s REST API ({_WRONG_PORT})"
                ) from None
            raise ServerUnavailableError(
                f"cannot reach the {self.service} at {self.url} ({reason}); is it running? "
                f"{self.start_hint}"
            ) from None
        except (http.client.HTTPException, ValueError) as exc:  # no HTTP, or no JSON
            text = str(exc)[:80]
            if not text.isprintable():  # bytes of a binary protocol, as the data port sends
                raise self._not_the_api("it answered in binary, not HTTP") from None
            raise self._not_the_api(f"{type(exc).__name__}: {text}") from None
        missing = [key for key in expect if not isinstance(reply, dict) or key not in reply]
        if missing:
            raise self._not_the_api(
                f"its answer to {method} {path} has no {', '.join(map(repr, missing))}"
            )
        return reply

    def _not_netgym_error(self, exc: urllib.error.HTTPError) -> NetgymError:
        """An HTTP error with no netgym error body: a proxy's, or another server's."""
        status = f"HTTP {exc.code} {exc.reason}"
        if exc.code in (502, 503, 504):  # a proxy, or a gateway, with nothing behind it
            return ServerUnavailableError(
                f"{self.url} answered {status}, not the {self.service}: is the "
                f"{self.service} behind it down or restarting? {self.start_hint}"
            )
        if exc.code in (404, 405, 501):  # it knows nothing of netgym's paths
            return self._not_the_api(f"it answered {status}")
        # A proxy's own refusal (its authentication, a body size, a rate limit): no
        # retry puts that right.
        return NetgymError(
            f"{self.url} answered {status} with no error of the {self.service}'s: a proxy "
            f"in front of it refused the request? (or another server answers there)"
        )

    def _not_the_api(self, why: str) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"what answers at {self.url} is not the {self.service}'s REST API ({why}); "
            f"{_WRONG_PORT}"
        )


_WRONG_PORT = "is this its REST port, not the envapi's data port or another service's?"


def _error_from_reply(exc: urllib.error.HTTPError) -> NetgymError | None:
    """The netgym error an HTTP error's body holds; None when it holds none."""
    try:
        payload = json.loads(exc.read())
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            return error_from_dict(payload["error"])
    except (ValueError, OSError):
        pass
    return None
