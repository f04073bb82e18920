"""
Tests for L{p2pnet_tx.files.names}: a name a peer chose can only name one file directly in
the files directory.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.files.names import (
    MAX_NAME_BYTES,
    MAX_OFFERED_NAME,
    UnsafeName,
    check_name,
    safe_name,
)


class SafeNameTests(SynchronousTestCase):
    """safe_name neutralises what is dangerous and keeps what is not."""

    def test_plain_names_kept(self) -> None:
        """Ordinary names, Unicode included, are kept as they are."""
        for name in ("report.pdf", "photo 2024.jpg", "données.csv", "日本語.txt", "a..b"):
            self.assertEqual(safe_name(name), name)

    def test_traversal_and_absolute_paths(self) -> None:
        """Only the last component of a path of either kind is kept."""
        cases = {
            "../../etc/passwd": "passwd",
            "/etc/passwd": "passwd",
            "..\\..\\windows\\win.ini": "win.ini",
            "C:\\boot.ini": "boot.ini",
            "dir/": "file",
            "..": "file",
            ".": "file",
            "...": "file",
            "../": "file",
        }
        for name, expected in cases.items():
            self.assertEqual(safe_name(name), expected, name)

    def test_hidden_and_trailing(self) -> None:
        """Leading dots and spaces go (no hidden file); trailing dots and spaces too."""
        self.assertEqual(safe_name(".bashrc"), "bashrc")
        self.assertEqual(safe_name("  name.txt. . "), "name.txt")

    def test_windows_devices(self) -> None:
        """A Windows device name, with any extension or case, gets a prefix."""
        for name in ("CON", "nul.txt", "Com1.tar.gz", "LPT9", "aux "):
            self.assertTrue(safe_name(name).startswith("_"), name)
        self.assertEqual(safe_name("console.txt"), "console.txt")

    def test_control_and_format_characters(self) -> None:
        """Control characters, bidi overrides and separators are dropped."""
        self.assertEqual(safe_name("a\x1b[31mb\n.txt"), "a[31mb.txt")
        self.assertEqual(safe_name("evil\u202etxt.exe"), "eviltxt.exe")
        self.assertEqual(safe_name("x\u2028y"), "xy")

    def test_windows_reserved_characters(self) -> None:
        """Characters Windows refuses in names become underscores."""
        self.assertEqual(safe_name('a<b>c:d"e|f?g*h'), "a_b_c_d_e_f_g_h")

    def test_long_names_cut_keeping_extension(self) -> None:
        """A long name is cut to MAX_NAME_BYTES bytes of UTF-8, its extension kept."""
        cut = safe_name("é" * 500 + ".tar")
        self.assertLessEqual(len(cut.encode()), MAX_NAME_BYTES)
        self.assertTrue(cut.endswith(".tar"))
        cut.encode("utf-8")  # no half character

    def test_check_name_refuses(self) -> None:
        """Not a string, empty, NUL, or absurdly long: refused outright."""
        for bad in (None, 3, b"x", "", "a\x00b", "x" * (MAX_OFFERED_NAME + 1)):
            self.assertRaises(UnsafeName, check_name, bad)
        self.assertEqual(check_name("x" * MAX_OFFERED_NAME), "x" * MAX_OFFERED_NAME)

    @given(st.text(min_size=1, max_size=MAX_OFFERED_NAME).filter(lambda t: "\x00" not in t))
    def test_any_name_is_safe(self, name: str) -> None:
        """Whatever the name, the result is one non-empty safe component."""
        result = safe_name(check_name(name))
        self.assertTrue(result)
        self.assertNotIn("/", result)
        self.assertNotIn("\\", result)
        self.assertFalse(result.startswith("."))
        self.assertNotIn(result, (".", ".."))
        self.assertLessEqual(len(result.encode("utf-8")), MAX_NAME_BYTES)
        self.assertFalse(any(ord(c) < 32 for c in result))
        self.assertEqual(safe_name(result), result)
