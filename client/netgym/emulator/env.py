"""``EmulatorEnv``: a plugged-in NES game as a Gymnasium env.

The env leases an FCEUX instance from the emulator service and steps it
through the instance's Lua bridge. When the instance fails (a Lua error, a
crash, a hang past ``timeout_s``), the step raises ``EnvError`` naming the
cause, the instance is given back, and the next ``reset`` starts a fresh one.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from netgym.client.rest import EMULATOR, RestClient, emulator_token
from netgym.emulator.bridge import SCREEN_SHAPE, BridgeConnection, BridgeReply
from netgym.errors import (
    AuthenticationError,
    ConnectionLostError,
    EnvError,
    InvalidRequestError,
    NetgymError,
    PeerError,
    SessionNotFoundError,
)

# A step's timeout: a socket timeout under 1 ms reads as none at all.
MIN_TIMEOUT_S = 0.001
MAX_TIMEOUT_S = 3600.0
DEFAULT_TIMEOUT_S = 10.0
# A reset whose instance is found gone this soon after the request is made again
# on a new one: that instance had died before (not in game.reset(), which the
# timeout is for, once).
LOST_AT_ONCE_S = 0.5
# What an instance started from the game folder as it is now must share with the
# env: its spaces, how much of the game one step plays, and the files (revision).
_SPEC_KEYS = ("actions", "buttons", "frames_per_step", "screen", "ram", "revision")


class EmulatorEnv(gym.Env[Any, Any]):
    """One instance of a game served by a netgym emulator service.

    Args:
        game: the game's name in its manifest (``Catch`` for ``netgym/Catch-v0``).
        emulator_url: the emulator service, e.g. ``http://127.0.0.1:8002``.
        observation: ``"screen"``, ``"ram"`` or ``"both"``; default: what the manifest says.
        timeout_s: how long a step may take before the instance counts as hung
            (0.001 to 3600 s; ``DEFAULT_TIMEOUT_S``, 10 s, by default). A call of
            the game's script that runs past ``script_timeout_s(timeout_s)`` (10%
            less, at least 0.5 s) is stopped with an error that names its line.
        max_episode_steps: truncate episodes; default: the manifest's ``max_steps``.
        token: the emulator service's token for its instances; default
            ``$NETGYM_EMULATOR_TOKEN``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        game: str,
        emulator_url: str,
        observation: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        token: str | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        if not _positive(timeout_s) or not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
            raise InvalidRequestError(
                f"timeout_s={timeout_s!r}: give the seconds a step may take, a number from "
                f"{MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g}"
            )
        if max_episode_steps is not None and not (
            _positive(max_episode_steps) and isinstance(max_episode_steps, int)
        ):
            raise InvalidRequestError(
                f"max_episode_steps={max_episode_steps!r}: give a whole number of steps above 0, "
                "or leave it out for the manifest's [episode] max_steps"
            )
        token = token or emulator_token()
        self._rest = RestClient(emulator_url, token=token, timeout_s=60.0, service=EMULATOR)
        self.spec_data: dict[str, Any] = self._rest.call("GET", f"/v1/games/{game}")
        self.game = game
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.render_mode = render_mode
        manifest_screen, ram_names = self.spec_data["screen"], self.spec_data["ram"]
        default = (
            "both" if manifest_screen and ram_names else ("screen" if manifest_screen else "ram")
        )
        self.observation_kind = observation or default
        if self.observation_kind not in ("screen", "ram", "both"):
            raise InvalidRequestError(
                f"observation must be 'screen', 'ram' or 'both', not {observation!r}"
            )
        if self.observation_kind in ("ram", "both") and not ram_names:
            raise InvalidRequestError(
                f"observation={observation!r}: {game}'s manifest names no RAM values to observe"
            )
        if self.observation_kind in ("screen", "both") and not manifest_screen:
            raise InvalidRequestError(
                f"observation={observation!r}: {game}'s manifest turns the screen off "
                "([observation] screen = false)"
            )
        screen_space = spaces.Box(0, 255, SCREEN_SHAPE, np.uint8)
        ram_space = spaces.Box(0, 255, (len(ram_names),), np.uint8)
        self.observation_space = {
            "screen": screen_space,
            "ram": ram_space,
            "both": spaces.Dict({"screen": screen_space, "ram": ram_space}),
        }[self.observation_kind]
        actions = self.spec_data["actions"]
        if actions is None:
            self.action_space = spaces.MultiBinary(len(self.spec_data["buttons"]))
            self._masks: list[int] | None = None
        else:
            self.action_space = spaces.Discrete(len(actions))
            self._masks = [int(a["mask"]) for a in actions]
        self.max_episode_steps = max_episode_steps or self.spec_data["max_steps"]
        self._instance: dict[str, Any] | None = None
        self._bridge: BridgeConnection | None = None
        self._waiting_for = "game.reset()"  # the script's function the last request runs
        self._steps = 0
        self._failed_at = 0.0  # when the last request found its instance failed
        self._last_screen: np.ndarray | None = None
        self._shares_screens = self.observation_kind != "ram" and self._screen_folder_shared()

    def _screen_folder_shared(self) -> bool:
        """Whether the service's screen files can be read here (else screens come by socket)."""
        try:
            health = self._rest.call("GET", "/v1/health")
        except NetgymError:  # 503 while its Xvfb is started again: the socket always works
            return False
        return _shares_screen_folder(health.get("screen_files"))

    @property
    def revision(self) -> str:
        """The version of the game this env plays: a digest of its folder's files."""
        return str(self.spec_data["revision"])

    def get_action_meanings(self) -> list[str]:
        """The manifest's combo names, one per action (as ALE's envs have); with the
        buttons as actions (MultiBinary), the button of each element."""
        if self._masks is None:
            return list(self.spec_data["buttons"])
        return [str(combo["name"]) for combo in self.spec_data["actions"]]

    @property
    def instance_id(self) -> str | None:
        return self._instance["instance_id"] if self._instance else None

    def _connect(self) -> BridgeConnection:
        if self._bridge is None:
            screen = self.observation_kind != "ram"
            try:
                instance = self._rest.call(
                    "POST",
                    "/v1/instances",
                    {
                        "game": self.game,
                        "screen": screen,
                        "screen_file": self._shares_screens,
                        # An endless loop in the game's script: an error with its line,
                        # in time for this env's timeout.
                        "script_timeout_s": script_timeout_s(self.timeout_s),
                        **(
                            {}
                            if self.idle_timeout_s is None
                            else {"idle_timeout_s": self.idle_timeout_s}
                        ),
                    },
                )
            except NetgymError as exc:
                if isinstance(exc, AuthenticationError):  # not the client's own token
                    raise EnvError(
                        f"the emulator service at {self._rest.url} refused the token sent for "
                        "its instances (the envapi's NETGYM_EMULATOR_TOKEN): give the two the "
                        "same one, as scripts/run.sh and Docker Compose do (restarted alone, "
                        "the emulator service needs the token it had)",
                        details={"cause": exc.code},
                    ) from exc
                if not isinstance(exc, PeerError) and type(exc) is not NetgymError:
                    raise  # an unknown game, the limit of instances, no service: as they are
                # The game's script did not load, or FCEUX did not start.
                raise EnvError(
                    f"{self.game}: no instance could start: {exc.message}; once the game's "
                    "folder is fixed, make the env again (an env plays the version of the game "
                    "it was made with: its next reset() tries that version again, which helps "
                    "only when the cause has passed)",
                    details={**exc.details, "cause": exc.code},
                ) from None
            self._instance = instance
            changed = [k for k in _SPEC_KEYS if instance["spec"].get(k) != self.spec_data.get(k)]
            if changed:
                self.release()
                raise EnvError(
                    f"{self.game}'s game folder has changed since this env was made "
                    f"({', '.join(changed)}; the revision counts the manifest, the Lua files, "
                    "the ROM and the save state): make the env again to play the game as it "
                    "is now; one env never mixes two versions of a game",
                    details={"changed": changed},
                )
            try:
                self._bridge = BridgeConnection(
                    instance["host"],
                    int(instance["port"]),
                    len(self.spec_data["ram"]),
                    self.timeout_s,
                    instance.get("screen_file"),
                    key=instance["key"],
                )
            except ConnectionLostError as exc:
                self.release()
                # Lost, as when it dies later: a new instance may well connect.
                raise EnvError(
                    f"{self.game} instance {instance['instance_id']}: {exc.message}; it was "
                    "stopped and the next reset() starts a new one",
                    details={"instance_id": instance["instance_id"], "instance_lost": True},
                ) from None
            except NetgymError:
                self.release()
                raise
        return self._bridge

    def has_live_instance(self) -> bool:
        """Whether this env holds an instance whose bridge has not closed."""
        return self._bridge is not None and not self._bridge.peer_closed()

    def start_instance(self) -> None:
        """Start this env's instance now, unless a live one runs (as its next ``reset()``
        would): a session of many envs starts theirs at once.

        Raises:
            EnvError, LimitExceededError, ...: as ``reset()`` for a start that fails.
        """
        self._release_if_dead()
        self._connect()

    def _release_if_dead(self) -> None:
        """Give back an instance that died since the last step: a reset needs nothing of it."""
        if self._bridge is not None and not self.has_live_instance():
            self.release()

    def release(self) -> None:
        """Give the instance back (its bridge quits, the service kills it); the next
        ``reset()`` starts a new one."""
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None
        if self._instance is not None:
            with contextlib.suppress(NetgymError):
                self._rest.call("DELETE", f"/v1/instances/{self._instance['instance_id']}")
            self._instance = None

    def _request(self, command: bytes, argument: int) -> BridgeReply:
        self._send(command, argument)
        return self._receive()

    def _send(self, command: bytes, argument: int) -> None:
        self._waiting_for = "game.reset()" if command == b"R" else "game.step()"
        # Only a reset starts an instance: a step on a new one would skip game.reset().
        bridge = self._connect() if command == b"R" else self._bridge
        if bridge is None:
            raise EnvError(
                f"{self.game}: no instance runs (its last one failed, or the env was never "
                "reset); call reset() to start one"
            )
        try:
            bridge.send(command, argument)
        except ConnectionLostError as exc:
            self._failed(exc)

    def _receive(self, screen_out: np.ndarray | None = None) -> BridgeReply:
        if self._bridge is None:
            raise EnvError(f"{self.game}: no request is under way; call reset() first")
        try:
            return self._bridge.receive(screen_out)
        except (ConnectionLostError, EnvError) as exc:
            self._failed(exc)

    def _failed(self, exc: ConnectionLostError | EnvError) -> NoReturn:
        """Give the instance back and raise an EnvError that says what happened to it."""
        self._failed_at = time.monotonic()  # before asking the service how it ended
        instance_id = self.instance_id
        cause = exc.message
        if exc.details.get("timed_out"):
            # From the client a hang looks the same whoever causes it.
            cause += f" (or the game script's {self._waiting_for} never returns: an endless loop?)"
        elif isinstance(exc, ConnectionLostError):
            cause += self._how_it_ended(instance_id)
        self.release()
        # FCEUX closed the connection (it crashed, or was killed): the emulator's fault,
        # which a new instance puts right, as a new worker would. Not a hang or a bad
        # reply: the game's script may cause those, and would again.
        lost = isinstance(exc, ConnectionLostError) and exc.details.get("closed") is True
        advice = "" if lost else " (after a fix to the game's script, make the env again)"
        raise EnvError(
            f"{self.game} instance {instance_id} failed: {cause}; it was stopped and the "
            f"next reset() starts a new one{advice}",
            details={**exc.details, "instance_id": instance_id, "instance_lost": lost},
        ) from None

    def _how_it_ended(self, instance_id: str | None) -> str:
        """What the service says of an instance whose connection broke, e.g.
        ``" (the instance ended: it was killed by SIGKILL)"``.

        A dying FCEUX closes its socket before it has quite exited: the service
        is asked again for up to a second while it still sees it running.
        """
        deadline = time.monotonic() + 1.0
        while True:
            try:
                status = self._rest.call("GET", f"/v1/instances/{instance_id}", timeout_s=2.0)
            except SessionNotFoundError as ended:  # it has ended: the service says how
                return f" ({ended.message})"
            except NetgymError:
                return ""
            if status.get("state") != "running":
                return f" (the instance {status.get('state')})"
            if time.monotonic() > deadline:
                return ""  # it runs on: hung or stopped, as the error says
            time.sleep(0.05)

    def _observation(self, reply: BridgeReply) -> Any:
        self._last_screen = reply.screen
        if self.observation_kind == "screen":
            return reply.screen
        if self.observation_kind == "ram":
            return reply.ram
        return {"screen": reply.screen, "ram": reply.ram}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Back to the start of play, then a seeded number of no-op frames."""
        super().reset(seed=seed)
        self._release_if_dead()
        had_instance = self._bridge is not None
        drawn_from = self.np_random.bit_generator.state
        noops = int(self.np_random.integers(0, self.spec_data["noop_max"] + 1))
        try:
            sent_at = self._failed_at = time.monotonic()
            try:
                reply = self._request(b"R", noops)
            except EnvError as exc:
                lost_at_once = self._failed_at - sent_at < LOST_AT_ONCE_S
                if not (had_instance and exc.details.get("instance_lost") and lost_at_once):
                    raise
                # It died since the last step, before peer_closed() could see it.
                reply = self._request(b"R", noops)
        except NetgymError:
            # The next reset() draws the same no-ops, as if this one had not been.
            self.np_random.bit_generator.state = drawn_from
            raise
        self._steps = 0
        return self._observation(reply), {"noops": noops, **reply.info}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.step_send(action)
        return self.step_receive()

    def step_send(self, action: Any) -> None:
        """The first half of ``step``: send the action to FCEUX and return at once.

        FCEUX emulates in its own process, so one caller can keep many
        instances busy: send to each, then ``step_receive`` from each.
        """
        if self._masks is not None:
            mask = self._masks[int(action)]
        else:
            mask = sum(
                1 << i for i, pressed in enumerate(np.asarray(action).reshape(-1)) if pressed
            )
        self._send(b"S", mask)

    def step_receive(
        self, observation_out: np.ndarray | None = None
    ) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The second half of ``step``: the results of the action ``step_send`` sent.

        With ``observation_out``, a (240, 256, 3) uint8 C-contiguous array, a
        screen observation is written there and returned as that array (the
        envapi passes its shared memory, saving a copy).
        """
        screen_out = observation_out if self.observation_kind == "screen" else None
        reply = self._receive(screen_out)
        self._steps += 1
        truncated = bool(self.max_episode_steps and self._steps >= self.max_episode_steps)
        return (
            self._observation(reply),
            reply.reward,
            reply.done,
            truncated and not reply.done,
            reply.info,
        )

    def render(self) -> np.ndarray | None:
        """A copy of the last screen (when the screen is observed).

        A copy, because the last observation may lie in memory that the next
        step overwrites (``step_receive(observation_out)``), and a recorder keeps
        every frame it is given.
        """
        return None if self._last_screen is None else self._last_screen.copy()

    def close(self) -> None:
        self.release()


def script_timeout_s(timeout_s: float) -> float:
    """How long one call of the game's ``step()`` or ``reset()`` may run: ``timeout_s``
    less 10% (at least 0.5 s, at most half) for the frames and the reply, whose time
    does not shrink with the timeout (a busy machine's scheduling)."""
    return timeout_s - min(max(0.1 * timeout_s, 0.5), 0.5 * timeout_s)


def _shares_screen_folder(screen_files: dict[str, str] | None) -> bool:
    """Whether this process sees the emulator service's screen folder (same host or volume).

    Screens then travel as a file on a tmpfs instead of through the socket,
    which costs FCEUX less than sending them.
    """
    if not screen_files:
        return False
    try:
        token = (Path(screen_files["dir"]) / "token").read_text()
    except (OSError, KeyError, TypeError):
        return False
    return token == screen_files.get("token")


def _positive(value: Any) -> bool:
    """Whether ``value`` is a number above 0 (TOML's and JSON's true is no number)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
