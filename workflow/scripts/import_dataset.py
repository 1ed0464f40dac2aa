"""Rule import_dataset: COCA or folder cohort -> results/data/{dataset}/ (cases.tsv, images/, labels/, import log);
the written case sheet is checked against workflow/schemas/cases.schema.yaml."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import pandas as pd
    from snakemake.utils import validate

    from s2cac.datasets.run import import_dataset

    dataset = {**snakemake.params.dataset, "name": snakemake.wildcards.dataset}
    import_dataset(dataset, Path(snakemake.output.cases).parent)
    sheet = pd.read_csv(snakemake.output.cases, sep="\t", dtype=str, keep_default_na=False)
    validate(sheet, str(Path(snakemake.scriptdir).parent / "schemas" / "cases.schema.yaml"))
