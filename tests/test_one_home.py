"""One home per name: a helper or constant the issue found defined twice is defined once in the repository's code
(the package, the workflow's scripts and rules, the benchmarks), and everyone else imports it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# name -> the one file that defines it
HOMES = {
    "ratio_tag": "s2cac/data/splits.py",
    "read_test_cases": "s2cac/data/splits.py",
    "IMAGE_SUFFIXES": "s2cac/io/images.py",
    "write_image": "s2cac/io/images.py",
    "json_safe": "s2cac/evaluation/run.py",
    "HUWindow": "s2cac/hu.py",
    "window_hu": "s2cac/hu.py",
    "atomic_write_text": "s2cac/atomic.py",
    "CONFIGURATION": "s2cac/nnunet.py",
}


def _code_files() -> list[Path]:
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    for folder in ("s2cac", "workflow/scripts", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def _definitions(source: str, suffix: str) -> set[str]:
    """Names a file defines at any level (functions, classes, assignments), a leading underscore dropped (a
    private copy such as ``_ratio_tag`` counts); Snakemake files by regex."""
    if suffix != ".py":
        found = re.findall(r"^\s*(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.M)
        names = {a or b for a, b in found}
    else:
        names = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return {n.lstrip("_") for n in names}


@pytest.mark.parametrize("name", sorted(HOMES))
def test_defined_once(name: str):
    where = [
        f.relative_to(ROOT).as_posix() for f in _code_files() if name in _definitions(f.read_text("utf-8"), f.suffix)
    ]
    assert where == [HOMES[name]], f"{name} defined in {where}, its home is {HOMES[name]}"


def test_nnunet_configuration_name_is_stated_once():
    literal = '"3d_fullres"'
    where = [f.relative_to(ROOT).as_posix() for f in _code_files() if literal in f.read_text(encoding="utf-8")]
    assert where == ["s2cac/nnunet.py"], where


def test_a_second_definition_is_found():
    assert "ratio_tag" in _definitions("def f():\n    def ratio_tag(r):\n        return r\n", ".py")
    assert "IMAGE_SUFFIXES" in _definitions("IMAGE_SUFFIXES: tuple = ()\n", ".py")
    assert {"ratio_tag", "X"} <= _definitions("def _ratio_tag(r):\n    pass\nX = 1\n", ".smk")


# numbers that are one parameter each: where they may be written as a literal (everyone else imports the name)
_NUMBER_HOMES = {
    "s2cac/hu.py": "HUWindow: window level 130 and width 850",
    "s2cac/scoring/agatston.py": "CALCIUM_THRESHOLD_HU = 130",
    "s2cac/cli.py": "EXIT_INTERRUPTED = 130 (an exit code)",
    "s2cac/synth/phantom.py": "lung tissue at -850 HU (a phantom's density, not the window)",
    "benchmarks/bench_score.py": "its independent per-slice reference scorer and random lesion peaks",
}


def _numbers(source: str, values=(130, 850)) -> list[int]:
    return [
        n.lineno
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and type(n.value) in (int, float) and n.value in values
    ]


def test_calcium_threshold_and_hu_window_are_written_once():
    """130 HU (calcium) and the 130/850 HU window: only their homes write the numbers (comments and docstrings
    may quote them)."""
    found = {
        f.relative_to(ROOT).as_posix(): lines
        for f in _code_files()
        if f.suffix == ".py" and (lines := _numbers(f.read_text("utf-8")))
    }
    assert set(found) <= set(_NUMBER_HOMES), {k: v for k, v in found.items() if k not in _NUMBER_HOMES}
    assert _numbers("def f(threshold_hu: float = 130.0):\n    return 850\n") == [1, 2]
