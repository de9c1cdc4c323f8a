"""Shared pytest set-up: make the repository root importable (`import utils`, `data.loader`)
however pytest is started (`make test`, `pytest tests/...` from any folder)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
