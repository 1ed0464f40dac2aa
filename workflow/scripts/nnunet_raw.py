"""Rule nnunet_raw: case sheet -> nnU-Net v2 raw dataset (HU-windowed uint8 images; binary or artery labels)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.data.nnunet_raw import write_raw_dataset
    from s2cac.hu import HUWindow

    out = Path(snakemake.output[0])
    write_raw_dataset(
        snakemake.input.cases,
        out.parent,
        int(snakemake.wildcards.id),
        snakemake.wildcards.dataset,
        window=HUWindow(**snakemake.params.window),
        threads=snakemake.threads,
        label_mode=getattr(snakemake.params, "labels", "binary"),  # a param only when not binary
        extra_windows=[HUWindow(**w) for w in getattr(snakemake.params, "extra_windows", [])],
    )
