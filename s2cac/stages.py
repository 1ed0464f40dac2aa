"""Result versions of the workflow's stages: when Snakemake re-runs a job because the code changed.

Policy (README, "Re-running after a code change"): a job re-runs when its inputs, its parameters (the
resolved config it uses) or its software environment change, or when the version of its stage below
changes. Editing package code (a comment, a refactoring, a docs edit) re-runs nothing by itself, so a
cosmetic edit never costs the GPU-days of the paper's trainings. A change that alters what a stage computes
bumps that stage's number here, in the same commit; the stages downstream then re-run through their inputs.
To re-run a stage by hand: ``snakemake --cores all -R <rule>`` (``--forcerun``), or ``-R`` with output files.
"""

from __future__ import annotations

#: rule name -> result version (an integer, bumped when the stage's results change).
STAGE_VERSIONS: dict[str, int] = {
    "synthesize_cohort": 1,
    "import_case_sheet": 1,
    "fetch_dataset": 1,
    "import_dataset": 1,
    "nnunet_raw": 1,
    "nnunet_preprocess": 1,
    "splits": 1,
    "train": 2,  # 2: tiny's full-resolution decoder block uses (1, 3, 3) kernels (fullres_kernel)
    "predict": 1,
    "evaluate": 2,  # 2: summary.json records every evaluation option (EvaluationOptions), not only those given
    "heart_regions": 1,
    "predict_threshold": 1,
    "paper_tables": 1,
    "paper_figures": 1,
    "paper_environment": 1,
    "experiment_table": 1,
}
