"""FCEUX instances: start one for a game, watch it, stop it.

Each instance is one FCEUX process with its own home folder (FCEUX rewrites
its config on exit), running netgym's Lua bridge on the shared display. It
dies with this service (``PR_SET_PDEATHSIG``), so even a service killed with
SIGKILL leaves no FCEUX behind. FCEUX ignores SIGTERM, so stopping is SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from netgym.errors import NetgymError
from netgym.protocol.sharedmemory import create_private_file, reserve
from netgym_emulator.manifest import Game
from netgym_emulator.output import ERROR_MARK, LOG_FILE, PRINT_MARK, FceuxOutput
from netgym_emulator.problems import GameError

BRIDGE = Path(__file__).with_name("bridge.lua")
# How the bridge's own start-up errors begin, as opposed to the game script's.
BRIDGE_ERROR = "bridge: "
SAVESTATE_ERROR = "savestate: "  # and a save state that did not load
EXIT_FILE = "bridge-exit"  # why the bridge ended FCEUX itself, when it did
BRIDGE_KEY_BYTES = 32  # hex digits a client sends first, as docs/games.md says
_SECRETS = ("NETGYM_EMULATOR_TOKEN", "NETGYM_TOKEN")  # not for FCEUX and game scripts
# FCEUX's GD screenshot (an 11-byte header, then 256x240 ARGB), plus one byte so
# that a reader can view the pixels as RGBA from the second byte of the first.
SCREEN_FILE_BYTES = 11 + 256 * 240 * 4 + 1
# FCEUX's SDL output (not OpenGL), no sound, and the game pads' buttons bound to
# nothing (PAD_PROFILE).
FCEUX_CONFIG = "SDL.VideoDriver = 1\nSDL.OpenGL = 0\nSDL.Sound = 0\n" + "".join(
    f"SDL.Input.GamePad.{pad}.Profile = netgym\n" for pad in range(4)
)
# FCEUX polls its 4 game pads 120 times a second, and looks up the key of every
# button of their 4 configurations that is bound to none by a scan of SDL's
# 512-entry key table: most of its main thread's CPU (33 of 55 µs a step, measured).
# The bridge presses buttons through joypad.set(), never the keyboard, so every
# button is bound to "none", which FCEUX reads as neither a key nor a joystick
# and skips. The file is FCEUX's input profile format: a GUID, a name, then
# button:binding pairs, a line for each configuration.
PAD_PROFILE = "".join(
    f"keyboard,netgym,config:{config},a:none,b:none,back:none,start:none,dpup:none,"
    "dpdown:none,dpleft:none,dpright:none,turboA:none,turboB:none\n"
    for config in range(4)
)
_PR_SET_PDEATHSIG = 1
FCEUX_DATA_MB = 1024  # an instance's data besides its script's (bridge.lua says "1 GB")
_DISPLAY_LOST = "X11 connection broke"  # what FCEUX (Qt) logs when Xvfb dies
_TCP_CLOSE_WAIT = "08"  # /proc/net/tcp's state of a socket whose peer has closed


class InstanceStartError(NetgymError):
    """An instance did not start: FCEUX exited, or its bridge did not report in time."""

    code = "instance_start"
    http_status = 500


def _prepare_fceux(service: int, memory_bytes: int) -> None:
    """In FCEUX's process before it starts: die with the service; schedule as a batch job;
    hold at most ``memory_bytes`` of data (0: no limit).

    Under SCHED_BATCH, an instance that a request wakes does not preempt the
    process that sent it, so a session that steps several instances sends
    every action before any of them takes its core (2 instances, 2 cores:
    about 7% more steps/s through the whole path).
    """
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != service:  # the service died before prctl took effect
        os._exit(1)
    with contextlib.suppress(OSError):  # a sandbox may refuse it: only speed is lost
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    if memory_bytes:
        # One allocation of a game script's (string.rep of gigabytes) happens before
        # the bridge can look: past this, Lua says "not enough memory" to the script.
        # The service's own hard limit may be lower: that one holds then.
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))


class BridgeLimits(NamedTuple):
    """The limits an instance's bridge keeps (0: none), as start_instance documents them."""

    attach_timeout_s: float
    idle_timeout_s: float
    script_timeout_s: float
    script_memory_mb: float


@dataclass
class Instance:
    """One running FCEUX with its bridge."""

    instance_id: str
    game: Game
    process: subprocess.Popen[bytes]
    home: Path
    port: int
    key: str  # what a client sends first on the bridge: only the one that started it knows
    screen_file: Path | None = None
    started_at: float = field(default_factory=time.time)
    client_gone_since: float | None = None  # when its client was first seen gone

    def __post_init__(self) -> None:
        self.output = FceuxOutput(self.home / LOG_FILE, f"{self.game.name} {self.instance_id}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def describe_exit(self) -> str:
        code = self.process.poll()
        if code is None:
            return "is running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:  # a real-time signal, which has no name
                return f"was killed by signal {-code}"
        with contextlib.suppress(OSError):  # the bridge's own reason: a timeout, say
            note = (self.home / EXIT_FILE).read_text(errors="backslashreplace")
            return f"was ended by its bridge: {note}"
        if _DISPLAY_LOST in self.output.tail():
            return (
                f"exited with code {code}: it lost its virtual display (Xvfb died; the "
                "service starts a new one)"
            )
        return f"exited with code {code}"

    def client_gone(self, tcp_states: dict[int, str]) -> bool:
        """Whether a client of its bridge has closed its end and FCEUX has not noticed.

        The bridge exits as soon as it reads that; one that does not is busy or
        stopped: a game script in an endless loop, or a SIGSTOP.
        """
        fds = Path(f"/proc/{self.process.pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    inode = target[8:-1] if target.startswith("socket:[") else ""
                    if inode and tcp_states.get(int(inode)) == _TCP_CLOSE_WAIT:
                        return True
        return False

    def public(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "game": self.game.name,
            "pid": self.process.pid,
            "port": self.port,
            "screen_file": str(self.screen_file) if self.screen_file else None,
            "alive": self.alive,
            "state": "running" if self.alive else f"ended: it {self.describe_exit()}",
            "started_at": self.started_at,
        }

    def kill(self, wait: bool = True) -> bool:
        """SIGKILL FCEUX (it ignores SIGTERM), remove its home folder and screen file,
        and return whether it has exited. Without ``wait`` it returns at once (call
        it again later to reap it): FCEUX can take seconds to exit when other
        instances keep every core busy (a game script in an endless loop), as its
        idle-class threads must each run to exit, and a client that gives an
        instance back must not wait for that. Killed, it runs none of its code
        again, so its files can go at once.
        """
        if self.alive:
            self.process.kill()
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self.output.pass_on()  # its last prints, before its folder goes
        shutil.rmtree(self.home, ignore_errors=True)
        if self.screen_file is not None:
            self.screen_file.unlink(missing_ok=True)
        return self.process.poll() is not None


def tcp_states() -> dict[int, str]:
    """The state of every TCP socket of this network namespace, by inode (Linux)."""
    states: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                states[int(fields[9])] = fields[3]
    return states


async def start_instance(
    game: Game,
    fceux: str,
    display: str,
    work_dir: Path,
    bridge_host: str,
    start_timeout_s: float,
    attach_timeout_s: float,
    screen: bool = True,
    screen_dir: Path | None = None,
    idle_timeout_s: float = 0.0,
    script_timeout_s: float = 0.0,
    script_memory_mb: float = 0.0,
) -> Instance:
    """Start FCEUX with the bridge and wait until the bridge reports its port.

    With ``screen_dir``, the bridge writes screens to a file there instead of
    sending them (for clients that share that folder, see ``bridge.lua``).
    ``script_timeout_s``: how long one call of the game script's ``step()`` or
    ``reset()`` may run before it is stopped with an error (0: no limit);
    ``script_memory_mb``: the Lua memory it may hold (0: no limit).

    Call it from the event loop's thread: FCEUX dies with the thread that
    started it, so it must not be a short-lived worker thread.

    Raises:
        InstanceStartError: with FCEUX's output when it fails to start.
        GameError: with the Lua error (file and line) when the game's script does not load.
    """
    instance_id = secrets.token_hex(6)
    key = secrets.token_hex(BRIDGE_KEY_BYTES // 2)
    home = work_dir / instance_id
    screen_file = screen_dir / f"{instance_id}.screen" if screen and screen_dir else None
    instance: Instance | None = None
    try:
        limits = BridgeLimits(attach_timeout_s, idle_timeout_s, script_timeout_s, script_memory_mb)
        process = _launch(game, fceux, display, home, bridge_host, limits, screen, screen_file, key)
        instance = Instance(instance_id, game, process, home, 0, key, screen_file=screen_file)
        instance.port, emulation_thread = await _wait_for_bridge(instance, start_timeout_s)
        if emulation_thread is not None:
            _idle_all_but(process.pid, emulation_thread)
    except BaseException:  # a failed or cancelled start leaves no process and no file
        if instance is not None:
            if not instance.kill(wait=False):  # reaped aside: the event loop goes on
                threading.Thread(target=instance.kill, daemon=True).start()
        else:
            shutil.rmtree(home, ignore_errors=True)
            if screen_file is not None:
                screen_file.unlink(missing_ok=True)
        raise
    return instance


def _launch(
    game: Game,
    fceux: str,
    display: str,
    home: Path,
    bridge_host: str,
    limits: BridgeLimits,
    screen: bool,
    screen_file: Path | None,
    key: str,
) -> subprocess.Popen[bytes]:
    """Make the instance's home (and screen file), and start FCEUX with the bridge.

    ``key``: what the bridge takes a client by.
    """
    home.mkdir(parents=True)
    port_file = home / "bridge-port"
    (home / ".fceux").mkdir()
    # FCEUX's default OpenGL output renders every frame in software on Xvfb and
    # burns a second core. Its SDL output (below, with SDL's dummy video driver)
    # draws nothing: the screens come from the emulator's own frame buffer.
    (home / ".fceux" / "fceux.cfg").write_text(FCEUX_CONFIG)
    profiles = home / ".fceux" / "input" / "keyboard"  # FCEUX looks here with no joystick
    profiles.mkdir(parents=True)
    (profiles / "netgym.txt").write_text(PAD_PROFILE)
    if game.savestate is not None:
        # FCEUX reads slot 0 of a ROM from ~/.fceux/fcs/<rom name>.fc0.
        slots = home / ".fceux" / "fcs"
        slots.mkdir()
        shutil.copyfile(game.savestate, slots / f"{game.state_name}.fc0")
    runtime_dir = home / "run"
    runtime_dir.mkdir(mode=0o700)  # Qt warns, in every error a game shows, without one
    env = {
        **{name: value for name, value in os.environ.items() if name not in _SECRETS},
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        # FCEUX writes the bridge's start state to a temporary file it removes only
        # on a clean exit; instances are killed, and their home goes with them.
        "TMPDIR": str(home),
        "DISPLAY": display,
        # SDL cannot draw into FCEUX's window then, so FCEUX skips drawing (Mesa's
        # llvmpipe took about 60 µs of CPU a step an instance, for a window that
        # nobody sees); Qt still needs the display.
        "SDL_VIDEODRIVER": "dummy",
        "NETGYM_PORT_FILE": str(port_file),
        "NETGYM_GAME_SCRIPT": str(game.script),
        "NETGYM_FRAMES_PER_STEP": str(game.frames_per_step),
        "NETGYM_SCREEN": "1" if screen else "0",
        "NETGYM_RAM": ",".join(str(a) for a in game.ram.values()),
        "NETGYM_START": game.start_sequence,
        "NETGYM_SAVESTATE": "1" if game.savestate is not None else "0",
        "NETGYM_BIND": bridge_host,
        "NETGYM_ATTACH_TIMEOUT": str(limits.attach_timeout_s),
        "NETGYM_IDLE_TIMEOUT": str(limits.idle_timeout_s),
        "NETGYM_SCRIPT_TIMEOUT": str(limits.script_timeout_s),
        "NETGYM_SCRIPT_MEMORY_MB": str(limits.script_memory_mb),
        "NETGYM_EXIT_FILE": str(home / EXIT_FILE),
        "NETGYM_BRIDGE_KEY": key,
        "NETGYM_PRINT_MARK": PRINT_MARK,
        "NETGYM_ERROR_MARK": ERROR_MARK,
    }
    if screen_file is not None:
        with os.fdopen(create_private_file(screen_file), "wb") as file:  # the screens: ours
            try:
                reserve(file.fileno(), SCREEN_FILE_BYTES)
            except OSError as exc:
                raise InstanceStartError(
                    f"no room for an instance's screen file in {screen_file.parent}: "
                    f"{exc.strerror}; free space there (a tmpfs such as /dev/shm is "
                    "shared with every program of the host), or make it larger",
                    details={"screen_dir": str(screen_file.parent)},
                ) from None
        env["NETGYM_SCREEN_FILE"] = str(screen_file)
    with (home / LOG_FILE).open("ab") as log:  # appending: FceuxOutput may empty it
        return subprocess.Popen(
            [fceux, "--sound", "0", "--loadlua", str(BRIDGE), str(game.rom)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=partial(_prepare_fceux, os.getpid(), _data_limit(limits.script_memory_mb)),
            cwd=home,
        )


def _data_limit(script_memory_mb: float) -> int:
    """The bytes of data an instance may hold: its script's Lua memory and FCEUX's own
    (about 100 MB, with room to spare); 0 (no limit) when the script has none."""
    if script_memory_mb <= 0:
        return 0
    return int((script_memory_mb + FCEUX_DATA_MB) * 2**20)


def _idle_all_but(pid: int, emulation_thread: int) -> None:
    """Schedule every thread of FCEUX but the one that emulates as SCHED_IDLE.

    The others draw FCEUX's window on the virtual display, which nobody sees,
    about 8% of a core per instance; as idle threads they take only CPU that
    nothing else wants (2 instances on 2 cores: ~15% more steps/s). Threads
    they start later inherit it.
    """
    tasks = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):  # FCEUX died meanwhile, or a sandbox refuses
        if not (tasks / str(emulation_thread)).exists():
            return  # not FCEUX's thread: idling the emulation would be far worse
        for task in tasks.iterdir():
            if task.name != str(emulation_thread):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setscheduler(int(task.name), os.SCHED_IDLE, os.sched_param(0))


async def _wait_for_bridge(instance: Instance, start_timeout_s: float) -> tuple[int, int | None]:
    """The port the bridge reports once the start of play is reached, and its thread.

    Raises:
        InstanceStartError: FCEUX died or the bridge did not report in time, or
            the bridge failed to start.
        GameError: the game's script failed to load (its file and line).
    """
    game = instance.game
    port_file = instance.home / "bridge-port"
    deadline = time.monotonic() + start_timeout_s
    while not port_file.exists():
        if not instance.alive or time.monotonic() > deadline:
            reason = (
                f"FCEUX {instance.describe_exit()}"
                if not instance.alive
                else f"its bridge did not report within {start_timeout_s:g} s (does the game "
                "script's top level loop for ever, or its [start] sequence play too long?)"
            )
            tail = instance.output.tail()
            raise InstanceStartError(
                f"an instance of {game.name} did not start: {reason}"
                + (f"; FCEUX said:\n{tail}" if tail else "")
            )
        await asyncio.sleep(0.01)
    status, _, value = port_file.read_text().partition(" ")
    if status == "port":
        port, _, thread = value.partition(" ")
        return int(port), int(thread) if thread.isdigit() else None
    if value.startswith(BRIDGE_ERROR):
        raise InstanceStartError(
            f"the bridge of an instance of {game.name} could not start: "
            f"{value.removeprefix(BRIDGE_ERROR)}",
            details={"bridge_error": value},
        )
    if value.startswith(SAVESTATE_ERROR):
        raise GameError(
            f"{game.name}'s save state {game.savestate} {value.removeprefix(SAVESTATE_ERROR)}; "
            "save it again in FCEUX with this ROM (docs/games.md, 'Starting from a save state')",
            details={"file": str(game.savestate)},
        )
    raise GameError(
        f"{game.name}'s Lua script {game.script} failed to load: {value}; fix the script",
        details={"lua_error": value, "file": str(game.script)},
    )
