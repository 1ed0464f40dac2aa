"""Rule heart_regions: the synthetic cohort's heart regions (s2cac.synth.write_heart_regions), one mask per case."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.atomic import atomic_dir
    from s2cac.synth import SynthConfig, write_heart_regions

    cfg = SynthConfig.from_dict(dict(snakemake.params.synthetic))
    with atomic_dir(snakemake.output[0]) as tmp:
        paths = write_heart_regions(tmp, cfg)
    print(f"wrote {len(paths)} heart regions to {snakemake.output[0]}")
