"""Rule synthesize_cohort: generate the synthetic cohort (s2cac.synth) into results/data/{dataset}/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.synth import SynthConfig, generate_cohort

    cfg = SynthConfig.from_dict(dict(snakemake.params.synthetic))
    generate_cohort(Path(snakemake.output.cases).parent, cfg, n_jobs=snakemake.threads)
