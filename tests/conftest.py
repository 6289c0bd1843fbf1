"""Shared test helpers in this folder (e.g. ``cli_runner``) importable from every test subfolder."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
