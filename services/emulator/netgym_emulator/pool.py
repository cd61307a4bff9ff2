"""The instances of this service: limits, lookup, reaping the dead."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netgym.errors import LimitExceededError, NetgymError, SessionNotFoundError, UnknownEnvError
from netgym.folders import named_or_owned
from netgym.protocol.sharedmemory import memory_folder, write_private_file
from netgym_emulator.games import (
    changed_between,
    discover,
    folder_signature,
    manifest_name,
    name_owners,
)
from netgym_emulator.instances import Instance, start_instance, tcp_states
from netgym_emulator.manifest import Game
from netgym_emulator.settings import EmulatorSettings

log = logging.getLogger("netgym.emulator")

WORK_DIR_PREFIX = "netgym-emulator-"  # FCEUX home folders, in the temp folder
ENDED_KEPT = 1000  # ended instances whose end a client may still ask about
# How long an instance may go on after its client has gone (a bridge notices at once).
CLIENT_GONE_GRACE_S = 3.0
# How often folders with problems are read again when nothing in the games folder
# changed (their fix may lie outside it); reading every folder takes a while.
PROBLEMS_REREAD_S = 1.0
# A file changed this recently may change again within its clock tick, keeping
# its time and size: the folder is read again until its files are older.
RECENT_CHANGE_NS = 2_000_000_000  # FAT and some shares keep times to 2 s


class UnknownGameError(UnknownEnvError):
    """No game of that name is plugged in (or its folder has a problem)."""


class InstancePool:
    """Games and their running instances."""

    def __init__(self, settings: EmulatorSettings, display: Callable[[], str]) -> None:
        """``display`` gives the name of a live X display (``VirtualDisplay.live_name``)."""
        self.settings = settings
        self.display = display
        self._starting = 0  # instances being started, counted against the limit
        self.games: dict[str, Game] = {}
        self._owners: dict[str, Path] = {}  # game name -> the folder that holds it
        self._signature: tuple[Any, ...] | None = None
        self._read_at = 0.0  # when the folder was read last
        self.problem_folders: dict[str, str] = {}  # game name -> its folder with a problem
        self.problems: dict[str, str] = {}
        self._told: dict[str, str] = {}  # what the log last said of each folder
        self._read_once = False  # whether the games folder has been read yet
        self.instances: dict[str, Instance] = {}
        self.ended: OrderedDict[str, str] = OrderedDict()  # why, for the latest ENDED_KEPT
        self.dying: list[Instance] = []  # killed, not exited yet: reaped once they have
        # FCEUX's home folders; a killed service's are removed by its successor.
        self.work_dir, self._own_work_dir = named_or_owned(settings.work_dir, WORK_DIR_PREFIX)
        self.screen_dir, self._own_screen_dir = memory_folder(
            settings.screen_dir, "netgym-screens-"
        )
        if self._own_screen_dir is None:
            # A folder named for us outlives a killed service (a tmpfs volume in
            # Compose): its screens are ours alone, and no instance of ours runs yet.
            for stale in self.screen_dir.glob("*.screen"):
                with contextlib.suppress(OSError):
                    if stale.lstat().st_uid == os.getuid():  # not another user's
                        stale.unlink()
        # A client that can read this token from the folder shares it with us,
        # so it may ask for screens as files (see EmulatorEnv).
        self.screen_token = secrets.token_hex(16)
        write_private_file(self.screen_dir / "token", self.screen_token.encode())
        self.rescan()

    @property
    def screen_files(self) -> dict[str, Any]:
        """Where screen files go, and the token that proves a reader shares the folder."""
        return {"dir": str(self.screen_dir), "token": self.screen_token}

    def rescan(self) -> None:
        """Read the games folder again if a file in it changed (no restart needed)."""
        signature = folder_signature(self.settings.games_dir, self.games.values())
        # A folder with a problem may be fixed outside it (a ROM installed elsewhere).
        problems_due = self.problems and time.monotonic() - self._read_at > PROBLEMS_REREAD_S
        if signature != self._signature or problems_due:
            self._read_at = time.monotonic()
            read_at_ns = time.time_ns()
            self.games, self.problems = discover(self.settings.games_dir, self._owners)
            self._owners = name_owners(self.games, self._owners)
            self.problem_folders = {
                name: folder
                for folder in self.problems
                if (name := manifest_name(self.settings.games_dir / folder))
            }
            # Taken again: the games read now may name ROMs outside their folders.
            self._signature = folder_signature(self.settings.games_dir, self.games.values())
            # Not for times ahead of the clock (a bad date, a skewed mount): every
            # request would read the whole folder again.
            if changed_between(self._signature, read_at_ns - RECENT_CHANGE_NS, time.time_ns()):
                self._signature = None
            self._tell_changes()

    def _tell_changes(self) -> None:
        """Log each game folder whose state changed, so a dropped-in game's problem is seen."""
        now = {folder: f"is not served: {problem}" for folder, problem in self.problems.items()}
        for game in self.games.values():
            now[game.folder.name] = f"is served as {game.env_id}"
        for folder, state in now.items():
            if self._told.get(folder) != state:
                level = logging.WARNING if state.startswith("is not") else logging.INFO
                log.log(level, "game folder %s %s", folder, state)
        if not now and (self._told or not self._read_once):
            log.warning(
                "the games folder %s holds no game folder: drop one in (docs/games.md), "
                "or set NETGYM_EMULATOR_GAMES_DIR (--games-dir) to another folder",
                self.settings.games_dir.resolve(),
            )
        self._told, self._read_once = now, True

    def game(self, name: str) -> Game:
        """A servable game by name, read again from its folder (edits apply from now on).

        Raises:
            UnknownGameError: naming the folder's problem when there is one.
        """
        self.rescan()
        if name in self.games:
            return self.games[name]
        folder = self.problem_folders.get(name) or next(
            (f for f in self.problems if _plain(f) == _plain(name)), None
        )
        problem = self.problems.get(folder) if folder else None
        if problem:
            raise UnknownGameError(
                f"game {name!r} cannot be served: {problem}", details={"problem": problem}
            )
        raise UnknownGameError(
            f"no game {name!r} in {self.settings.games_dir}; "
            f"plugged in: {', '.join(sorted(self.games)) or 'none'}"
        )

    def reap(self, check_clients: bool = False) -> None:
        """Forget instances whose FCEUX has exited, keeping why; with ``check_clients``
        (the supervisor's call, every second), also kill those whose client left.

        A client that goes (a killed session) while its instance is busy in an
        endless loop of the game script, or stopped, would leave it holding a
        slot, and a core, for good.
        """
        self.dying = [instance for instance in self.dying if not instance.kill(wait=False)]
        states = tcp_states() if check_clients and self.instances else {}
        now = time.monotonic()
        for instance_id, instance in list(self.instances.items()):
            if not instance.alive:
                self._ended(instance_id, f"FCEUX {instance.describe_exit()}")
                instance.kill()
                del self.instances[instance_id]
                continue
            if not check_clients:
                continue
            instance.output.pass_on()
            if not instance.client_gone(states):
                instance.client_gone_since = None
            elif instance.client_gone_since is None:
                instance.client_gone_since = now
            elif now - instance.client_gone_since > CLIENT_GONE_GRACE_S:
                log.warning(
                    "instance %s of %s: its client has gone and FCEUX does not notice "
                    "(the game script in an endless loop, or FCEUX stopped); killed",
                    instance_id,
                    instance.game.name,
                )
                self._kill(instance)
                del self.instances[instance_id]
                self._ended(
                    instance_id,
                    "killed: its client had gone, and FCEUX did not answer (the game "
                    "script in an endless loop, or FCEUX stopped)",
                )

    async def start(
        self,
        name: str,
        screen: bool | None = None,
        screen_file: bool = False,
        script_timeout_s: float = 0.0,
        idle_timeout_s: float | None = None,
    ) -> Instance:
        """A new instance of a game; ``screen_file``: screens go to a shared file;
        ``script_timeout_s``: how long one call of its script may run (0: no limit);
        ``idle_timeout_s``: how long it waits for its client at least (None: the
        service's setting, which it never shortens).

        Raises:
            UnknownGameError, LimitExceededError, InstanceStartError, GameError (the
            script does not load).
        """
        game = self.game(name)
        self.reap()
        if len(self.instances) + self._starting >= self.settings.max_instances:
            raise LimitExceededError(
                f"{len(self.instances)} instances run and {self._starting} are starting, the "
                f"limit (NETGYM_EMULATOR_MAX_INSTANCES={self.settings.max_instances}): close "
                "envs you no longer use, or raise the limit"
            )
        self._starting += 1
        try:
            instance = await start_instance(
                game,
                self.settings.fceux,
                self.display(),
                self.work_dir,
                self.settings.bridge_host,
                self.settings.start_timeout_s,
                self.settings.attach_timeout_s,
                screen=game.screen if screen is None else screen and game.screen,
                screen_dir=self.screen_dir if screen_file else None,
                idle_timeout_s=_idle_timeout(self.settings.idle_timeout_s, idle_timeout_s),
                script_timeout_s=script_timeout_s,
                script_memory_mb=self.settings.script_memory_mb,
            )
        except NetgymError as exc:  # its script did not load, say: its author looks here
            log.warning("%s: no instance could start: %s", name, exc.message[:4000])
            raise
        finally:
            self._starting -= 1
        self.instances[instance.instance_id] = instance
        return instance

    @property
    def starting(self) -> int:
        """Instances being started now, counted against the limit."""
        return self._starting

    def get(self, instance_id: str) -> Instance:
        """A live instance.

        Raises:
            SessionNotFoundError: with the reason, when it has ended or never existed.
        """
        self.reap()
        if instance_id in self.instances:
            return self.instances[instance_id]
        if instance_id in self.ended:
            raise SessionNotFoundError(
                f"instance {instance_id} has ended: {self.ended[instance_id]}"
            )
        raise SessionNotFoundError(f"no instance {instance_id}")

    def stop(self, instance_id: str) -> None:
        """Kill an instance (idempotent, for one that has ended).

        Raises:
            SessionNotFoundError: when no such instance ever ran (of those kept).
        """
        if instance_id not in self.instances and instance_id not in self.ended:
            self.get(instance_id)
        instance = self.instances.pop(instance_id, None)
        if instance is not None:
            self._kill(instance)
            self._ended(instance_id, "stopped through the REST API")

    def _kill(self, instance: Instance) -> None:
        """Kill an instance without waiting for it to exit: ``reap`` finishes it."""
        if not instance.kill(wait=False):
            self.dying.append(instance)

    def _ended(self, instance_id: str, reason: str) -> None:
        self.ended[instance_id] = reason
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)

    def stop_all(self) -> None:
        for instance_id in list(self.instances):
            self.stop(instance_id)
        for instance in self.dying:
            instance.kill()
        self.dying = []
        if self._own_work_dir is not None:
            self._own_work_dir.remove()
        if self._own_screen_dir is not None:
            self._own_screen_dir.remove()
        else:
            (self.screen_dir / "token").unlink(missing_ok=True)


def _plain(name: str) -> str:
    """A name as a folder might be named for it: ``My_Game`` and ``mygame`` alike."""
    return "".join(c for c in name.lower() if c.isalnum())


def _idle_timeout(setting: float, asked: float | None) -> float:
    """An instance's idle timeout: the service's setting (0: none), or longer when asked."""
    if setting == 0 or asked is None:
        return setting
    return max(setting, asked)


__all__ = ["InstancePool", "NetgymError", "UnknownGameError"]
