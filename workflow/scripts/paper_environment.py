"""Rule paper_environment: resolved config, software versions and wall time per stage for the report."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import yaml

    from s2cac.atomic import atomic_write_text
    from s2cac.paper.environment import software_versions, walltime_markdown, walltime_table

    repo = Path(snakemake.scriptdir).resolve().parents[1]
    atomic_write_text(snakemake.output.config, yaml.safe_dump(dict(snakemake.config), sort_keys=False))
    atomic_write_text(snakemake.output.software, software_versions(repo).to_csv(index=False, lineterminator="\n"))
    wall = walltime_table("logs/benchmarks")
    atomic_write_text(snakemake.output.walltime, wall.to_csv(index=False, na_rep="NaN", lineterminator="\n"))
    atomic_write_text(snakemake.output.walltime_md, walltime_markdown(wall, snakemake.params.cohort))
    print(Path(snakemake.output.walltime_md).read_text(encoding="utf-8"))
