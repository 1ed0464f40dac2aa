"""Rule splits: labeled/unlabeled/negative/validation/test lists and nnU-Net's splits_final.json for one seed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.data.cases import load_case_sheet
    from s2cac.data.splits import write_splits

    files = write_splits(
        load_case_sheet(snakemake.input.cases),
        Path(snakemake.output.nnunet).parent,
        test_fraction=snakemake.params.test_fraction,
        n_folds=snakemake.params.n_folds,
        labeled_ratios=snakemake.params.labeled_ratios,
        seed=int(snakemake.wildcards.seed),
        test_seed=snakemake.params.test_seed,
    )
    print(f"wrote {len(files)} split files")
