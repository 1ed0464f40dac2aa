"""Rule nnunet_preprocess: nnU-Net v2 fingerprint, plans (3d_fullres) and preprocessed data."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.data.preprocess import run_preprocessing

    run_preprocessing(
        snakemake.input.raw,
        Path(snakemake.output.plans).parent.parent,
        target_spacing_zyx=snakemake.params.target_spacing,
        patch_size_zyx=snakemake.params.patch_size,
        num_processes=snakemake.threads,
        log=snakemake.log[0],
    )
