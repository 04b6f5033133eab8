"""
Libraries: the configured roots, their names, and whether each is there.

Naming: a kind's first path is named after the kind (``movies``, ``tv``,
``music``), the next ones ``movies-2``, ``movies-3``... in the order of the
configuration. Names depend on nothing but the configuration, so every
replica and every restart agrees; appending a path keeps the existing names,
reordering renames them.

A root is *available* when it is a readable directory with at least one
entry. An empty root counts as unavailable: on a replica whose NFS mount
failed, the mount point is an empty directory, and serving "no files" from
it would look like data loss to every player. A library that is meant to be
empty gets any file (e.g. an empty ``.revenge-library``) to say so.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure

from revenge.config import Config
from revenge.media._threads import FilesystemThreads

_log = Logger(namespace="revenge.media")

MOVIES = "movies"
TV = "tv"
MUSIC = "music"

# (kind, the media.* key that lists its roots), in the order names are given.
LIBRARY_KINDS: tuple[tuple[str, str], ...] = (
    (MOVIES, "movie_paths"),
    (TV, "tv_paths"),
    (MUSIC, "music_paths"),
)

READINESS_PREFIX = "media:"
MARKER_EXAMPLE = ".revenge-library"

# How long a probe of a root may take before the library counts as not responding.
# Below the 2 s that /readyz gives each check, so the reason logged is ours.
PROBE_TIMEOUT = 1.5


@dataclass(frozen=True)
class Library:
    name: str
    kind: str
    # Absolute; never shown to clients.
    root: str


def library_name(kind: str, position: int) -> str:
    """The name of the ``position``-th (from 1) root of ``kind``."""
    return kind if position == 1 else f"{kind}-{position}"


def libraries_from_config(config: Config) -> tuple[Library, ...]:
    """Every configured library, named as the module docstring says."""
    libraries = []
    for kind, key in LIBRARY_KINDS:
        roots: Sequence[str] = getattr(config.media, key)
        for position, root in enumerate(roots, start=1):
            libraries.append(Library(library_name(kind, position), kind, os.path.abspath(root)))
    return tuple(libraries)


@dataclass(frozen=True)
class RootProblem:
    """Why a library cannot be served: a stable ``code`` and words for operators."""

    code: str
    explanation: str


def probe_root(root: str) -> RootProblem | None:
    """None when ``root`` can be served, else what is wrong. Blocking: a worker thread's job."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        return RootProblem("missing", "does not exist")
    except OSError as error:
        return RootProblem("unreadable", f"cannot be read ({error.strerror or error})")
    if not stat.S_ISDIR(info.st_mode):
        return RootProblem("not_a_directory", "is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        return RootProblem("unreadable", "cannot be read (permission denied)")
    try:
        with os.scandir(root) as entries:
            empty = next(entries, None) is None
    except OSError as error:
        return RootProblem("unreadable", f"cannot be read ({error.strerror or error})")
    if empty:
        return RootProblem(
            "empty",
            "is empty, so the volume is probably not mounted (if the library is meant to be "
            f"empty, put any file in it, e.g. an empty {MARKER_EXAMPLE})",
        )
    return None


class LibraryUnavailable(Exception):
    """A library's root cannot be served; the message names the root and why."""


_UNKNOWN = RootProblem("unknown", "not probed yet")


class LibraryMonitor:
    """
    Probes library roots in worker threads and logs each change of a
    library's state once: not once per probe, however often ``/readyz`` asks.
    A probe still running is shared by whoever asks meanwhile, so a hung
    mount ties up one thread per library, not one per probe.
    """

    def __init__(
        self,
        libraries: Sequence[Library],
        threads: FilesystemThreads,
        reactor: Any,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._libraries = {library.name: library for library in libraries}
        self._threads = threads
        self._reactor = reactor
        self._timeout = timeout
        self._running: dict[str, Deferred[RootProblem | None]] = {}
        self._state: dict[str, RootProblem | None] = {name: _UNKNOWN for name in self._libraries}

    def _shared_probe(self, library: Library) -> Deferred[RootProblem | None]:
        shared = self._running.get(library.name)
        if shared is None:
            shared = self._threads.run(probe_root, library.root)

            def done(result: RootProblem | None | Failure) -> RootProblem | None:
                del self._running[library.name]
                if isinstance(result, Failure):
                    result = RootProblem("unreadable", f"cannot be probed ({result.value!r})")
                self._record(library, result)
                return result

            # Registered first, so the state is recorded before any waiter hears.
            shared.addBoth(done)
            self._running[library.name] = shared
        waiter: Deferred[RootProblem | None] = Deferred()

        def hand_over(result: RootProblem | None) -> RootProblem | None:
            # The waiter may have given up (timed out) already.
            if not waiter.called:
                waiter.callback(result)
            return result

        shared.addCallback(hand_over)
        return waiter

    async def problem(self, library: Library) -> RootProblem | None:
        """Probe ``library``'s root now: None when it can be served."""
        waiter = self._shared_probe(library)
        waiter.addTimeout(self._timeout, self._reactor)
        try:
            return await waiter
        except DeferredTimeout:
            problem = RootProblem(
                "not_responding",
                f"did not answer within {self._timeout:g}s (is the NFS server reachable?)",
            )
            self._record(library, problem)
            return problem

    async def check(self, library: Library) -> None:
        """The readiness check: raises :class:`LibraryUnavailable` naming the root."""
        problem = await self.problem(library)
        if problem is not None:
            raise LibraryUnavailable(f"{library.root} {problem.explanation}")

    def _record(self, library: Library, problem: RootProblem | None) -> None:
        before = self._state.get(library.name, _UNKNOWN)
        self._state[library.name] = problem
        if problem == before:
            return
        if problem is None:
            _log.info(
                "media library {library} ({kind}) {state} at {root}",
                library=library.name,
                kind=library.kind,
                root=library.root,
                state="available again" if before is not _UNKNOWN else "available",
            )
        elif before is None or before is _UNKNOWN or before.code != problem.code:
            _log.warn(
                "media library {library} unavailable: {root} {explanation}",
                library=library.name,
                root=library.root,
                explanation=problem.explanation,
                problem=problem.code,
            )
