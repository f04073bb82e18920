# -*- test-case-name: tests.test_tap -*-
"""
L{OneLineUsageErrors}: what makes a bad option of a p2pnet_tx twistd plugin one line and a hint
instead of the whole usage text that twistd prints before the error of any plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from twisted.python import usage

__all__ = ["OneLineUsageErrors"]


class OneLineUsageErrors(usage.Options):
    """
    Put this first among the bases of a plugin's options (C{class TwistdOptions(
    OneLineUsageErrors, Options)}): a bad option then ends twistd with C{<command>: <error>} and
    the hint on stderr, status 1.

    @cvar command: the command line's name, as C{"twistd p2pnet"}.
    @cvar usage_hint: the line after the error, saying where the usage is.
    """

    command: ClassVar[str]
    usage_hint: ClassVar[str]

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse as the options class that follows this one among the bases does.

        @raise SystemExit: with the error line and the hint, for a bad option.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise SystemExit(f"{self.command}: {e}\n{self.usage_hint}") from None
