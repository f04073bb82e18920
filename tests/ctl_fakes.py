"""
A fake of C{p2pnet-ctl}'s control API client for the tests of its long polls: it answers each
request with the next scripted answer, records the paths asked, and once out of answers
fails as a node that went away does.
"""

from __future__ import annotations

from typing import Any

from p2pnet_tx.ctl import CtlError


class ScriptedClient:
    """
    Answers C{call()} with C{answers}, in order, then raises L{CtlError}.

    @ivar paths: the path of every call, in order.
    """

    def __init__(self, answers: list[Any]) -> None:
        self._answers = list(answers)
        self.paths: list[str] = []

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """Record C{path}; return the next answer, or raise L{CtlError} when none is left."""
        self.paths.append(path)
        if not self._answers:
            raise CtlError("no node is answering")
        return self._answers.pop(0)
