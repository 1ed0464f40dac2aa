"""Paper tables from per-run metrics: main comparison, ablations, label ratios, paired Wilcoxon tests and the
console headline, each written as CSV (numbers), Markdown and LaTeX (mean +- sd, best in bold), each stating
its cohort."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from s2cac.atomic import atomic_write_text
from s2cac.paper.collect import METRICS

#: Per-case quantities of the paired tests -> (label, higher is better).
PAIRED_METRICS: dict[str, tuple[str, bool]] = {
    "dice": ("Dice", True),
    "abs_agatston_error": ("|Agatston error|", False),
}
DIGITS = {"hd95_mm": 2}


@dataclass(frozen=True)
class Cell:
    """A table cell: text, or a number (mean, optional sd) shown with ``digits`` decimals."""

    text: str | None = None
    mean: float = math.nan
    sd: float = math.nan
    digits: int = 3
    bold: bool = False

    def render(self, pm: str) -> str:
        if self.text is not None:
            return self.text
        if not math.isfinite(self.mean):
            return "n/a"
        out = f"{self.mean:.{self.digits}f}"
        return f"{out}{pm}{self.sd:.{self.digits}f}" if math.isfinite(self.sd) else out


@dataclass
class Table:
    """A rendered table: ``header`` and ``rows`` of cells, ``data`` the machine-readable CSV content."""

    name: str
    title: str
    cohort: str
    header: list[str]
    rows: list[list[Cell]]
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# --- aggregation ---------------------------------------------------------------------------------------------


def aggregate(metrics: pd.DataFrame, keys: Sequence[str] = ("experiment", "ratio")) -> pd.DataFrame:
    """Mean and sd (ddof 1; NaN for one run) of every METRICS column over the runs (folds x seeds) per ``keys``;
    NaN runs are left out of both. Columns: ``keys``, ``n_runs``, ``<metric>_mean``, ``<metric>_sd``."""
    rows = []
    for key, sub in metrics.groupby(list(keys), sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)) | {"n_runs": len(sub)}
        for m in METRICS:
            v = sub[m].dropna().to_numpy(float)
            row[f"{m}_mean"] = float(v.mean()) if v.size else math.nan
            row[f"{m}_sd"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _bold_best(cells: list[Cell], higher_better: bool) -> list[Cell]:
    """The cells whose shown mean is the best of the column get ``bold``; ties are all bold; a column with fewer
    than two values has no best."""
    shown = [round(c.mean, c.digits) if math.isfinite(c.mean) else math.nan for c in cells]
    finite = [v for v in shown if math.isfinite(v)]
    if len(finite) < 2:
        return cells
    best = max(finite) if higher_better else min(finite)
    return [Cell(c.text, c.mean, c.sd, c.digits, bold=v == best) for c, v in zip(cells, shown, strict=True)]


def _with_best_columns(rows: list[list[Cell]], senses: list[bool | None]) -> list[list[Cell]]:
    """Bold the best cell of every column with a sense (True higher is better, False lower, None none)."""
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else []
    for j, sense in enumerate(senses):
        if sense is not None:
            cols[j] = _bold_best(cols[j], sense)
    return [list(r) for r in zip(*cols, strict=True)] if rows else []


def comparison_table(
    name: str,
    title: str,
    metrics: pd.DataFrame,
    experiments: Sequence[str],
    ratio: str,
    cohort: str,
    labels: dict[str, str] | None = None,
) -> Table:
    """One row per experiment (in the given order) at labeled ratio ``ratio``: every METRICS column as mean +- sd
    over the runs, the best of each column in bold."""
    labels = labels or {}
    agg = aggregate(metrics[metrics["ratio"] == ratio])
    agg = agg.set_index("experiment").reindex(list(experiments)).reset_index()
    rows = []
    for _, r in agg.iterrows():
        n = int(r["n_runs"]) if r["n_runs"] == r["n_runs"] else 0
        rows.append(
            [Cell(labels.get(r["experiment"], r["experiment"])), Cell(str(n))]
            + [Cell(None, r[f"{m}_mean"], r[f"{m}_sd"], DIGITS.get(m, 3)) for m in METRICS]
        )
    rows = _with_best_columns(rows, [None, None, *(hb for _, hb in METRICS.values())])
    data = agg.assign(method=[labels.get(e, e) for e in agg["experiment"]], labeled_pct=ratio, cohort=cohort)
    notes = [
        f"Labeled ratio {ratio} %; mean +- sd over the runs (folds x seeds; n = runs); best of each column in bold.",
        "Dice, sensitivity, precision and HD95: mean over the test scans where defined (a scan with empty reference "
        "and prediction has none); lesion F1 pooled over the test lesions; Agatston ICC(A,1), risk-category "
        "accuracy and linearly weighted kappa over the test scans.",
    ]
    header = ["Method", "n", *(label for label, _ in METRICS.values())]
    return Table(name, title, cohort, header, rows, data, notes)


def ratio_table(
    metrics: pd.DataFrame,
    experiments: Sequence[str],
    ratios: Sequence[str],
    cohort: str,
    labels: dict[str, str] | None = None,
    columns: Sequence[str] = ("dice", "agatston_icc"),
) -> Table:
    """Rows = experiments, columns = each of ``columns`` at each labeled ratio (mean +- sd, best in bold)."""
    labels = labels or {}
    agg = aggregate(metrics).set_index(["experiment", "ratio"])
    rows, records = [], []
    for exp in experiments:
        row = [Cell(labels.get(exp, exp))]
        for m in columns:
            for tag in ratios:
                hit = agg.loc[(exp, tag)] if (exp, tag) in agg.index else None
                mean = float(hit[f"{m}_mean"]) if hit is not None else math.nan
                sd = float(hit[f"{m}_sd"]) if hit is not None else math.nan
                row.append(Cell(None, mean, sd, DIGITS.get(m, 3)))
                n = int(hit["n_runs"]) if hit is not None else 0
                records.append({"experiment": exp, "method": labels.get(exp, exp), "metric": m, "labeled_pct": tag,
                                "n_runs": n, "mean": mean, "sd": sd, "cohort": cohort})  # fmt: skip
        rows.append(row)
    senses = [None, *(METRICS[m][1] for m in columns for _ in ratios)]
    header = ["Method", *(f"{METRICS[m][0]} {tag} %" for m in columns for tag in ratios)]
    notes = ["Mean +- sd over the runs (folds x seeds) at each labeled ratio; best of each column in bold."]
    return Table("label_ratio", "Labeled-ratio study", cohort, header, _with_best_columns(rows, senses),
                 pd.DataFrame(records), notes)  # fmt: skip


# --- paired tests --------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, float)
    idx = [i for i in np.argsort(p, kind="stable") if math.isfinite(p[i])]
    out, running = [math.nan] * len(p), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (len(idx) - rank) * p[i]))
        out[i] = running
    return out


def paired_tests(
    per_case: pd.DataFrame,
    method: str,
    others: Sequence[str],
    ratio: str,
    metrics: dict[str, tuple[str, bool]] = PAIRED_METRICS,
) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank tests (scipy defaults) of ``method`` against each of ``others`` across the
    test scans at labeled ratio ``ratio``. Each scan's value is its mean over the runs (folds x seeds) of the
    method; scans where either side is undefined (NaN, e.g. Dice of an empty reference and prediction) are left
    out. p is NaN when no pair is left or every difference is 0; ``p_holm`` adjusts over ``others`` per metric."""
    sub = per_case[per_case["ratio"] == ratio]
    rows = []
    for metric, (label, higher) in metrics.items():
        means = sub.groupby(["experiment", "case_id"])[metric].mean()
        first = len(rows)
        for other in others:
            if method not in means.index.get_level_values(0) or other not in means.index.get_level_values(0):
                continue
            pair = pd.concat([means[method].rename("a"), means[other].rename("b")], axis=1, join="inner").dropna()
            a, b = pair["a"].to_numpy(float), pair["b"].to_numpy(float)
            stat = p = math.nan
            if len(a) and np.any(a != b):
                res = stats.wilcoxon(a, b)
                stat, p = float(res.statistic), float(res.pvalue)
            rows.append({"method": method, "baseline": other, "metric": metric, "label": label,
                         "higher_is_better": higher, "n_cases": len(a),
                         "mean_method": float(a.mean()) if len(a) else math.nan,
                         "mean_baseline": float(b.mean()) if len(b) else math.nan,
                         "median_difference": float(np.median(a - b)) if len(a) else math.nan,
                         "statistic": stat, "p_value": p})  # fmt: skip
        adjusted = holm([r["p_value"] for r in rows[first:]])
        for r, q in zip(rows[first:], adjusted, strict=True):
            r["p_holm"] = q
    return pd.DataFrame(rows)


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def tests_table(tests: pd.DataFrame, ratio: str, cohort: str, labels: dict[str, str] | None = None) -> Table:
    """The paired tests as a table (p < 0.05 in bold)."""
    labels = labels or {}
    rows = []
    for _, r in tests.iterrows():
        rows.append([
            Cell(f"{labels.get(r['method'], r['method'])} vs {labels.get(r['baseline'], r['baseline'])}"),
            Cell(r["label"]), Cell(str(int(r["n_cases"]))),
            Cell(None, r["mean_method"]), Cell(None, r["mean_baseline"]), Cell(None, r["median_difference"]),
            Cell(_p_text(r["p_value"]), bold=bool(r["p_value"] < 0.05)),
            Cell(_p_text(r["p_holm"]), bold=bool(r["p_holm"] < 0.05)),
        ])  # fmt: skip
    header = ["Comparison", "Per-case metric", "Scans", "Method", "Baseline", "Median difference", "p", "p (Holm)"]
    notes = [
        f"Labeled ratio {ratio} %. Two-sided Wilcoxon signed-rank test across the test scans (each scan's value "
        "averaged over the runs); Holm-adjusted over the baselines per metric; p < 0.05 in bold.",
        "Dice pairs leave out scans where it is undefined (empty reference and prediction).",
    ]
    data = tests.assign(labeled_pct=ratio, cohort=cohort)
    return Table("wilcoxon", "Paired tests against each baseline", cohort, header, rows, data, notes)


def headline(metrics: pd.DataFrame, experiments: Sequence[str], ratio: str, cohort: str,
             labels: dict[str, str] | None = None) -> str:  # fmt: skip
    """Plain-text table for the console: per method Dice, Agatston ICC and risk-category agreement."""
    labels = labels or {}
    agg = aggregate(metrics[metrics["ratio"] == ratio]).set_index("experiment")
    cols = [("dice", "Dice"), ("agatston_icc", "Agatston ICC"), ("risk_accuracy", "Risk agreement")]
    lines = [["Method", "runs", *(c for _, c in cols)]]
    for exp in experiments:
        if exp not in agg.index:
            continue
        r = agg.loc[exp]
        lines.append([labels.get(exp, exp), str(int(r["n_runs"]))]
                     + [Cell(None, r[f"{m}_mean"], r[f"{m}_sd"]).render(" +- ") for m, _ in cols])  # fmt: skip
    widths = [max(len(line[j]) for line in lines) for j in range(len(lines[0]))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    head = f"Headline: {cohort}\nlabeled ratio {ratio} %, mean +- sd over the runs (folds x seeds)"
    return head + "\n\n" + "\n".join(text)


# --- rendering -----------------------------------------------------------------------------------------------

_TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
              "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
_TEX_WORDS = {">=": r"$\geq$", "<=": r"$\leq$", "+-": r"$\pm$", "±": r"$\pm$", "<": "$<$", ">": "$>$", "|": "$|$"}


def tex_escape(text: str) -> str:
    """``text`` as LaTeX text (special characters escaped; >=, <=, +-, <, >, | as math)."""
    out, i = [], 0
    while i < len(text):
        word = next((w for w in _TEX_WORDS if text.startswith(w, i)), None)
        if word:
            out.append(_TEX_WORDS[word])
            i += len(word)
        else:
            out.append(_TEX_CHARS.get(text[i], text[i]))
            i += 1
    return "".join(out)


def to_markdown(table: Table) -> str:
    """GitHub Markdown: title, cohort, the table (bold = ``**``), notes."""

    def md(c: Cell) -> str:
        s = c.render(" ± ").replace("|", "\\|")
        return f"**{s}**" if c.bold else s

    lines = [f"**{table.title}**", "", f"Cohort: {table.cohort}.", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|")
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines + [""] + table.notes) + "\n"


def to_latex(table: Table) -> str:
    """A LaTeX ``table`` environment with a ``tabular`` (no package needed), caption with the cohort."""

    def tex(c: Cell) -> str:
        s = tex_escape(c.text) if c.text is not None else c.render(r" $\pm$ ")
        return rf"\textbf{{{s}}}" if c.bold else s

    caption = f"{table.title}. Cohort: {table.cohort}. " + " ".join(table.notes)
    lines = [
        "% generated by s2cac.paper from the workflow's evaluations; do not edit by hand",
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{tex_escape(caption)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}",
        r"\hline",
        " & ".join(tex_escape(h) for h in table.header) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(tex(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """Write ``<name>.csv`` (the numbers, with a ``cohort`` column), ``<name>.md`` and ``<name>.tex``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{table.name}.{ext}" for ext in ("csv", "md", "tex")]
    atomic_write_text(paths[0], table.data.to_csv(index=False, na_rep="NaN", lineterminator="\n"))
    atomic_write_text(paths[1], to_markdown(table))
    atomic_write_text(paths[2], to_latex(table))
    return paths


def as_dict(table: Table) -> dict[str, Any]:
    """Header and rendered rows (plain text), e.g. for a test or a JSON dump."""
    return {"header": table.header, "rows": [[c.render(" +- ") for c in row] for row in table.rows]}
