"""
The one exception configuration loading raises.
"""

from __future__ import annotations


class ConfigError(Exception):
    """
    The configuration cannot be used.

    C{str(error)} is a single line that names the key (or the file, for
    errors about the file as a whole) and never contains a secret's value.

    @ivar key: the dotted key at fault, or C{None} for file-level errors.
    @ivar origin: where the bad value came from when that is not the file
        (C{"from environment variable REVENGE_..."}, C{"from the command
        line"}), else C{None}.
    @ivar detail: what is wrong, without the key prefix.
    """

    def __init__(
        self, detail: str, *, key: str | None = None, origin: str | None = None
    ) -> None:
        # One line, always: startup failures are read in pod logs and
        # journald, where a wrapped message is split into separate records.
        self.detail = " ".join(detail.split())
        self.key = key
        self.origin = origin
        super().__init__(self._line())

    def _line(self) -> str:
        if self.key is None:
            return self.detail
        where = f" ({self.origin})" if self.origin else ""
        return f"config key {self.key!r}{where}: {self.detail}"

    def __str__(self) -> str:
        return self._line()
