"""The envapi service: Gymnasium environments served over the netgym protocol.

A FastAPI app for control and metadata (``api/``), a raw TCP data port for
stepping (``dataport.py``), and one worker process per session
(``sessions/``).
"""

from __future__ import annotations

from netgym.extras import require_extra

require_extra("envapi", ("fastapi", "uvicorn", "pydantic_settings", "ale_py"), "netgym-envapi")
