"""Rule paper_tables: the paper tables and the console headline (s2cac.paper.build.build_tables)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.paper.build import build_tables

    for path in build_tables(dict(snakemake.params.plan), Path(snakemake.output.runs).parent):
        print(f"wrote {path}")
    print(Path(snakemake.output.headline).read_text(encoding="utf-8"))
