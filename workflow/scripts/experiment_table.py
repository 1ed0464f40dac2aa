"""Rule experiment_table: one experiment's summary over its runs (s2cac.paper.build.build_experiment_table)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.paper.build import build_experiment_table

    build_experiment_table(dict(snakemake.params.plan), snakemake.wildcards.experiment, Path(snakemake.output.csv))
    print(Path(snakemake.output.md).read_text(encoding="utf-8"))
