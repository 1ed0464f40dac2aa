"""Rule paper_figures: the paper figures, PNG and PDF (s2cac.paper.build.build_figures)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.paper.build import build_figures

    out = Path(snakemake.output[0]).parent
    for path in build_figures(dict(snakemake.params.plan), out, snakemake.input.cases):
        print(f"wrote {path}")
