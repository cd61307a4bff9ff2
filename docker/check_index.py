"""Fail an image build early, saying what to do, when pip cannot reach its index over TLS.

Behind a proxy that intercepts TLS, pip only says "No matching distribution
found", which does not point at the cause.

    python3 docker/check_index.py
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.error
import urllib.request

INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"


def main() -> None:
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT"))
    try:
        urllib.request.urlopen(INDEX, timeout=30, context=context).close()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            sys.exit(
                f"cannot verify {INDEX}'s TLS certificate ({exc.reason.verify_message}): if "
                "your network intercepts TLS, put its certificate authority (PEM, *.crt) in "
                "docker/extra-ca/ and build again"
            )
        sys.exit(f"cannot reach {INDEX} to install Python packages: {exc.reason}")
    except (OSError, http.client.HTTPException) as exc:
        sys.exit(f"cannot reach {INDEX} to install Python packages: {exc!r}")


if __name__ == "__main__":
    main()
