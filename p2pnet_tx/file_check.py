# -*- test-case-name: tests.test_files_transfers,tests.test_control_files,tests.test_ctl_files -*-
"""
L{regular_file}: the one check that a path names a file that can be sent, shared by
C{FileTransfers.send_file}, the control API's C{POST /api/files} and C{p2pnet-ctl send-file}
(which imports it without loading the file part).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from p2pnet_tx.errors import P2PNetError

__all__ = ["NotARegularFile", "regular_file"]


class NotARegularFile(P2PNetError, OSError):
    """
    A path names something other than a regular file (a FIFO, a device, a socket): it is
    refused before it is opened, since opening or reading one can block the reactor.
    """


def regular_file(path: str, show: Callable[[str], str] = str) -> str:
    """
    Return the absolute path of the regular file C{path} names, checked with C{os.stat}
    alone, which never blocks on a FIFO or a device.

    @param show: how the messages write the path (L{p2pnet_tx.logtext.peer_text} for a path
        a caller gave).
    @raise FileNotFoundError: no such file.
    @raise PermissionError: a directory on the way cannot be searched.
    @raise IsADirectoryError: C{path} is a directory.
    @raise NotARegularFile: C{path} is a FIFO, a device or a socket.
    @raise OSError: C{path} cannot be used otherwise (too long, a NUL in it...).
    """
    path = os.path.abspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {show(path)}") from None
    except PermissionError:
        raise PermissionError(f"may not read {show(path)}") from None
    except (OSError, ValueError) as e:
        raise OSError(f"cannot use {show(path)}: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{show(path)} is a directory: send one file at a time")
    if not stat.S_ISREG(mode):
        raise NotARegularFile(f"{show(path)} is not a regular file (a FIFO, a device or a "
                              f"socket cannot be sent)")
    return path
