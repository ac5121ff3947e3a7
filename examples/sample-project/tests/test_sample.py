import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sample import add  # noqa: E402
from sample.text import shout  # noqa: E402


class SampleTest(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_shout(self) -> None:
        self.assertEqual(shout("hi"), "HI!")
