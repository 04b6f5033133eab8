"""
Child processes in cgroups for the network-fault tests: a :class:`Child`
runs ``_netchild.py`` inside one :class:`NodeCgroup` and is driven over
its stdin and stdout, every answer awaited with a deadline.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from revenge.testing import NodeCgroup

CHILD = Path(__file__).with_name("_netchild.py")
ANSWER_S = 15.0


class Child:
    """One ``_netchild.py`` process in ``cgroup``; :meth:`call` sends a command and waits for its answer."""

    def __init__(self, cgroup: NodeCgroup) -> None:
        self.cgroup = cgroup
        self.process = subprocess.Popen(
            cgroup.wrap([sys.executable, "-u", str(CHILD)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put(line)
        self._answers.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, op: str, **arguments: Any) -> None:
        """Send a command without waiting (pair with :meth:`answer`), so that children work at once."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = ANSWER_S) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.cgroup.name} gave no answer within {timeout}s") from None
        if line is None:
            assert self.process.stderr is not None
            raise RuntimeError(f"{self.cgroup.name} exited: {self.process.stderr.read()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "exception" in answer:
            raise RuntimeError(f"{self.cgroup.name} failed: {answer['exception']}")
        return answer

    def call(self, op: str, wait: float = ANSWER_S, **arguments: Any) -> dict[str, Any]:
        """Send a command and wait up to ``wait`` seconds for its answer."""
        self.send(op, **arguments)
        return self.answer(wait)

    def cgroup_line(self) -> str:
        """This process's cgroup v2 membership as the kernel reports it."""
        for line in Path(f"/proc/{self.pid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
