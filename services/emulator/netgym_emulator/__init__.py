"""The emulator service: FCEUX instances under a virtual display, one per env.

It reads the games folder (``games.py``), each game's manifest (``manifest.py``)
and the ROM and script it names (``game_files.py``), telling every problem
with its file, line and fix (``problems.py``); it starts and supervises instances
(``instances.py``) on an Xvfb display (``display.py``), and lends them over
REST (``app.py``). Frames never pass through it: the env talks to the
instance's Lua bridge (``bridge.lua``) directly.
"""

from __future__ import annotations

from netgym.extras import require_extra

require_extra(
    "emulator", ("fastapi", "uvicorn", "pydantic_settings", "pyvirtualdisplay"), "netgym-emulator"
)
