# s2cac: semi-supervised coronary artery calcium segmentation (S2CAC) and Agatston scoring.
#
#   make demo                           # = snakemake --cores all on config/config.yaml (synthetic cohort)
#   snakemake --use-conda --cores all   # the same, each stage in its own conda env (workflow/envs/)
#   snakemake --configfile config/paper.yaml ...   # another experiment set
#
# Paths (every rule writes only below results/, logs/ and benchmarks/):
#   results/data/{dataset}/cases.tsv, images/, labels/       the cohort (HU images, per-artery label maps)
#   results/data/{dataset}/overview.png, threshold_baseline.tsv   synthetic cohort only: look and baseline
#   results/nnunet/raw/Dataset{id}_{dataset}/                nnU-Net v2 raw dataset (HU-windowed; binary, or
#                                                            artery labels with preprocess.labels: arteries)
#   results/nnunet/preprocessed/Dataset{id}_{dataset}/       nnU-Net v2 plans and preprocessed data
#   results/splits/{dataset}/seed{seed}/splits_final.json    nnU-Net folds
#   results/splits/{dataset}/seed{seed}/fold{fold}/labeled{pct}.json   roles: labeled, unlabeled,
#                                                            negative, validation, test
#   results/models/{dataset}/{experiment}/labeled{pct}/fold{fold}/seed{seed}/   model folder (checkpoints,
#                                                            plans.json, config.yaml, training_log.txt, curves.png)
#   results/predict/{dataset}/{experiment}/labeled{pct}/fold{fold}/seed{seed}/  test masks <case>_cac.nii.gz,
#                                                            scores.csv, qc/<case>.png
#   results/evaluate/{dataset}/{experiment}/labeled{pct}/fold{fold}/seed{seed}/ per_case.csv, summary.json,
#                                                            summary.csv, figures/
#   logs/{rule}/{wildcards}.log, benchmarks/{rule}/{wildcards}.tsv
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=DATASET,
    seed=r"\d+",
    fold=r"\d+",
    ratio=r"\d+(\.\d+)?",
    id=r"\d{3}",
    experiment=r"[A-Za-z][A-Za-z0-9_]*",


include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        get_all_targets(),
