import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/_*.py helper modules

from _cases import make_cohort  # noqa: E402


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """A small hand-made cohort; returns the path of its cases.tsv."""
    return make_cohort(tmp_path / "cohort")
