"""The commands in README.md, docs/*.md and */README.md name existing subcommands, options and targets.

- ``s2cac ...``: the subcommand exists, every option named is one of its options (exactly: argparse would also
  take an abbreviation), and the subcommand's own parser (``s2cac.cli.command_parser``) accepts the command as
  written, placeholders standing for values of their option's type; a mention in prose may leave out required
  arguments, a command line in a fenced block may not.
- ``snakemake ...``: every option is one of Snakemake's, and the commands that run the workflow (not those
  with a part left out as ``...``) plan without error (``snakemake -n``) in an empty working directory holding
  this checkout's ``config/`` and ``workflow/``.
- ``make X``: the Makefile has the target. In Python snippets the imports resolve and each call of an imported
  name binds to its signature.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cases import make_cohort
from _doc_commands import DocCommand, check_s2cac, doc_commands, variants

from s2cac.cli import COMMANDS, command_parser, top_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*/README.md"))]
COMMANDS_IN_DOCS = [c for doc in DOCS for c in doc_commands(doc, ROOT)]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))

# Files the docs name in snakemake commands that a user makes (the docs say so) or that another change adds.
USER_FILES = {"my.yaml": "the user's own config", "config/other.yaml": "the user's own config"}
# Configs that need the user's data: the test writes a small stand-in where the config looks for it.
NEEDS_DATA = {"config/paper.yaml": "resources/paper"}
# A copy of the SLURM profile the README tells the user to make.
SUBSTITUTES = {"~/s2cac-slurm": "workflow/profiles/slurm"}
# Snakemake options that do not plan a run (checked against --help only).
NOT_PLANNING = {"--report", "--list-changes", "--lint", "--help", "--version"}


def _parser(name: str | None):
    return top_parser() if name is None else command_parser(name)


def _of(program: str) -> list[DocCommand]:
    return [c for c in COMMANDS_IN_DOCS if c.program == program]


def test_the_docs_show_commands():
    """Guards the parsing: the docs' command blocks and mentions are found."""
    s2cac = _of("s2cac")
    assert len([c for c in s2cac if c.fenced]) >= 10, [c.text for c in s2cac]
    assert {c.text.split()[1] for c in s2cac} >= {"predict", "score", "evaluate", "train", "synth", "import-weights"}
    assert any(c.fenced for c in _of("snakemake")) and _of("make")


@pytest.mark.parametrize("command", _of("s2cac"), ids=lambda c: f"{c.where} {c.text[:60]}")
def test_s2cac_command_in_docs_is_accepted(command: DocCommand):
    problems = [
        f"{' '.join(argv)}: {problem}"
        for argv in variants(command.text)
        for problem in check_s2cac(argv[1:], _parser, COMMANDS, complete=command.fenced)
    ]
    assert not problems, f"{command.where}: `{command.text}`:\n" + "\n".join(problems)


def test_a_wrong_subcommand_or_option_in_a_doc_is_caught(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(
        "Run `s2cac score --image CT --mask MASK --no-such-option 3`.\n\n```bash\ns2cac frobnicate --out x\n"
        "s2cac predict --model m --input i --output o --thresh 130   # an abbreviation argparse would take\n"
        "s2cac evaluate --cases c.tsv\n"  # --out-dir is required
        "s2cac import folder --images a --labels b --out c [--label-map orcascore|1:2]\n```\n"
    )
    found = doc_commands(doc, tmp_path)
    assert [c.where for c in found] == ["README.md:1", "README.md:4", "README.md:5", "README.md:6", "README.md:7"]
    results = [check_s2cac(v[1:], _parser, COMMANDS, c.fenced) for c in found for v in variants(c.text)]
    assert "s2cac score has no option --no-such-option" in results[0]
    assert "no subcommand 'frobnicate'" in results[1][0]
    assert results[2] == ["s2cac predict has no option --thresh"]
    assert "the following arguments are required: --out-dir" in results[3][0]
    assert results[4] == results[5] == []  # both alternatives of the label map are accepted


def test_synopsis_notation():
    assert variants("s2cac x (--a A [--b B] | --c C) --d 8|4") == [
        ["s2cac", "x", "--a", "A", "--b", "B", "--d", "8"],
        ["s2cac", "x", "--a", "A", "--b", "B", "--d", "4"],
        ["s2cac", "x", "--c", "C", "--d", "8"],
        ["s2cac", "x", "--c", "C", "--d", "4"],
    ]


def test_make_targets_in_docs_exist():
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    missing = {c.text for c in _of("make") if c.text.split()[1] not in targets}
    assert not missing, f"Makefile has no target for {missing}"


def _snakemake_help() -> str:
    return subprocess.run([SNAKEMAKE, "--help"], capture_output=True, text=True, check=True).stdout


def test_snakemake_options_in_docs_exist():
    known = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", _snakemake_help()))
    wrong = {
        f"{c.where}: {tok}"
        for c in _of("snakemake")
        for tok in shlex.split(c.text.replace("[", " ").replace("]", " "))
        if tok.startswith("-") and tok.split("=", 1)[0] not in known
    }
    assert not wrong, f"not snakemake options: {sorted(wrong)}"


def _dry_runs() -> list[tuple[str, list[str]]]:
    """(where, arguments) of each distinct documented snakemake command that plans a run."""
    runs: dict[tuple[str, ...], tuple[str, list[str]]] = {}
    for c in _of("snakemake"):
        for argv in variants(c.text):
            args = [SUBSTITUTES.get(a, a) for a in argv[1:] if a != "--use-conda" or shutil.which("conda")]
            if NOT_PLANNING & set(args) or "..." in args or any(a in USER_FILES for a in args):
                continue
            same_plan = tuple(a for i, a in enumerate(args) if a not in ("-n", "--cores") and args[i - 1] != "--cores")
            runs.setdefault(same_plan, (c.where, args))
    return list(runs.values())


@pytest.mark.slow
@pytest.mark.parametrize("where,args", _dry_runs(), ids=lambda x: x if isinstance(x, str) else " ".join(x))
def test_documented_snakemake_command_plans(tmp_path, where, args):
    for config, data in NEEDS_DATA.items():
        if config in args:  # a stand-in case sheet (real data is the user's) where the config reads it
            make_cohort(tmp_path / data, n=10)
    for folder in ("config", "workflow"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args, "-n", "--nolock"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "This was a dry-run" in out, f"{where}: snakemake {' '.join(args)}\n{out[-3000:]}"


def _python_snippets() -> list[tuple[str, str]]:
    fence = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
    return [
        (f"{doc.relative_to(ROOT)}:{doc.read_text(encoding='utf-8').count(chr(10), 0, m.start()) + 2}", m.group(1))
        for doc in DOCS
        for m in fence.finditer(doc.read_text(encoding="utf-8"))
    ]


@pytest.mark.parametrize("where,code", _python_snippets(), ids=lambda x: x if ":" in x else "")
def test_python_snippet_in_docs_matches_the_api(where, code):
    """The snippet's imports resolve and every call of an imported name fits its signature."""
    tree = ast.parse(code, filename=where)
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports, where
    namespace: dict = {}
    exec(compile(ast.Module(body=imports, type_ignores=[]), where, "exec"), namespace)  # noqa: S102
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    checked = 0
    for call in calls:
        root = call.func
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id in namespace) or any(
            isinstance(a, ast.Starred) for a in call.args
        ):
            continue
        func = eval(compile(ast.Expression(call.func), where, "eval"), namespace)  # noqa: S307
        keywords = {k.arg: None for k in call.keywords if k.arg is not None}
        try:
            inspect.signature(func).bind(*[None] * len(call.args), **keywords)
        except TypeError as err:
            pytest.fail(f"{where}: {ast.unparse(call)}: {err}")
        checked += 1
    assert checked, f"{where}: no call of an imported name"


_DOTTED = re.compile(r"(?<![\w./-])s2cac(?:\.[A-Za-z_]\w*)+")


def _unresolved(name: str) -> str | None:
    """Why the dotted name ``s2cac.x.y`` does not exist (None when it imports and every attribute is there)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError:
            continue
    for attr in parts[i:]:
        if not hasattr(obj, attr):
            return f"{'.'.join(parts[:i])} has no {attr!r}"
        obj = getattr(obj, attr)
        i += 1
    return None


def test_python_names_in_docs_exist():
    """Every ``s2cac.module.name`` the docs mention can be imported (a renamed or removed function is caught)."""
    wrong = {
        f"{doc.relative_to(ROOT)}: {m.group(0)}: {why}"
        for doc in DOCS
        for m in _DOTTED.finditer(doc.read_text(encoding="utf-8"))
        if (why := _unresolved(m.group(0)))
    }
    assert not wrong, sorted(wrong)
    assert _unresolved("s2cac.training.checkpoint.load_model_for_inference")  # the check can fail


# a document named by path (docs/x.md, benchmarks/RESULTS.md) or by an upper-case name (METHOD.md, README.md)
_DOC_NAME = re.compile(r"(?<![\w./*-])((?:[\w-]+/)+[\w-]+\.md|[A-Z][A-Z_]*\.md)\b")
_SCANNED = ("README.md", "Makefile", "Snakefile", "s2cac", "workflow", "docs", "config", "benchmarks", "tests")
_OUTPUT_ROOTS = ("results/", "logs/", "tables/")  # files the workflow writes, not documents of the repository


def _document_names(text: str) -> set[str]:
    return {m for m in _DOC_NAME.findall(text) if not m.startswith(_OUTPUT_ROOTS)}


def test_documents_named_in_code_and_docs_exist():
    """No comment, docstring, config or doc points at a document the repository does not have."""
    files = [ROOT / n for n in _SCANNED if (ROOT / n).is_file()]
    files += [
        p
        for n in _SCANNED
        if (ROOT / n).is_dir()
        for p in (ROOT / n).rglob("*")
        if p.is_file() and p.suffix in (".py", ".md", ".smk", ".yaml", ".sh", ".rst") and p != Path(__file__)
    ]
    assert len(files) > 50 and ROOT / "s2cac" / "training" / "loaders.py" in files
    missing = {
        f"{f.relative_to(ROOT)}: {name}"
        for f in files
        for name in _document_names(f.read_text(encoding="utf-8", errors="replace"))
        if not (ROOT / name).is_file() and not (f.parent / name).is_file()
    }
    assert not missing, sorted(missing)
    assert _document_names("see METHOD.md, docs/nowhere.md and */README.md, not results/x/y.md") == {
        "METHOD.md",
        "docs/nowhere.md",
    }
