# s2cac: semi-supervised coronary artery calcium segmentation (S2CAC) and Agatston scoring.
#
#   make demo                           # = snakemake --cores all on config/config.yaml (synthetic cohort)
#   snakemake --use-conda --cores all   # the same, each stage in its own conda env (workflow/envs/)
#   snakemake --configfile config/paper.yaml ...   # another experiment set
#
# Paths (every rule writes only below results/ and logs/):
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
#   results/predict/{dataset}/threshold/...                  the threshold-only reference method (no model)
#   results/paper/{dataset}/tables/, figures/, experiments/  paper tables (csv, md, tex), figures (png, pdf),
#                                                            one summary per experiment; config.yaml,
#                                                            software.csv, walltime.csv for the report
#
# Targets: all (default: the cohort, the runs of training.run and the paper outputs), paper, experiment_<name>
# (one experiment alone, e.g. experiment_s2cac_no_nsb). Report: snakemake --report results/report.html
#   logs/{rule}/{wildcards}.log, logs/benchmarks/{rule}/{wildcards}.tsv (job timings)
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
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        get_all_targets(),


if PAPER is not None:

    rule paper:
        # `snakemake --cores all paper`: every table, figure and report file of the paper plan.
        input:
            paper_targets(),
        localrule: True

    # every experiment of the config, also one the paper plan does not compare (e.g. an ablation outside training.run)
    for _name in dict.fromkeys([*experiments_of(PAPER), *EXPERIMENTS]):

        rule:
            # `snakemake --cores all experiment_<name>`: one experiment's trainings, predictions, evaluations
            # and its own table; the other experiments' outputs are not touched.
            name:
                f"experiment_{_name}"
            input:
                experiment_targets(_name),
            localrule: True


onsuccess:
    # the demo's last words: how well each method did, and where to look next
    headline = Path(PAPER_DIR) / "tables" / "headline.txt"
    if PAPER is not None and headline.is_file():
        print(f"\n{headline.read_text().rstrip()}")
        print(f"\nTables and figures: {PAPER_DIR}/ (tables/main.md first). The HTML report with captions, config,")
        print("software versions and wall time per stage: snakemake --report results/report.html")
