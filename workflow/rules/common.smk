# Shared helpers: config validation and input functions.
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DATASET = config["dataset"]["name"]
NNUNET_FOLDER = f"Dataset{int(config['dataset']['nnunet_id']):03d}_{DATASET}"
REPO = Path(workflow.basedir)
SPLITS = config["splits"]


def _ratio_tag(ratio):
    return f"{round(float(ratio) * 100, 6):g}"


RATIO_TAGS = [_ratio_tag(r) for r in SPLITS["labeled_ratios"]]

if config["dataset"]["source"] == "case_sheet" and not config["dataset"].get("case_sheet"):
    raise ValueError("config: dataset.source is case_sheet but dataset.case_sheet (the TSV path) is not set")
if config["dataset"]["source"] == "synthetic":
    sys.path.insert(0, str(REPO))
    from s2cac.synth.config import SynthConfig

    config["dataset"].setdefault("synthetic", {})
    try:  # reject typos in the generator's options now, not when the job runs
        SynthConfig.from_dict(dict(config["dataset"]["synthetic"]))
    except ValueError as err:
        raise ValueError(f"config: dataset.synthetic: {err}") from None
for fold in SPLITS["folds"]:
    if fold >= SPLITS["n_folds"]:
        raise ValueError(f"config: splits.folds has fold {fold} but splits.n_folds is {SPLITS['n_folds']}")


def package_code(*subpackages):
    """Source files of the given s2cac subpackages, to be declared as inputs (editing the code reruns the job)."""
    files = []
    for sub in subpackages:
        files += sorted(str(p) for p in (REPO / "s2cac" / sub).rglob("*.py"))
    return files


def split_files(seed):
    return [f"results/splits/{DATASET}/seed{seed}/splits_final.json"] + [
        f"results/splits/{DATASET}/seed{seed}/fold{fold}/labeled{tag}.json"
        for fold in SPLITS["folds"]
        for tag in RATIO_TAGS
    ]


EXPERIMENTS = config["experiments"]
TRAINING = config["training"]
for name in TRAINING["run"]:
    if name not in EXPERIMENTS:
        raise ValueError(f"config: training.run names {name!r}, which is not under experiments: {sorted(EXPERIMENTS)}")
if EXPERIMENTS:
    sys.path.insert(0, str(REPO))
    from s2cac.training.config import MethodConfig, experiment_mapping

    for name in EXPERIMENTS:  # reject typos and impossible switch combinations now, not hours into a job
        try:
            MethodConfig.from_dict(experiment_mapping(config, name))
        except ValueError as err:
            raise ValueError(f"config: experiments.{name}: {err}") from None


def get_method(wildcards):
    """Resolved method mapping of an experiment (training.defaults + experiments[name]) with the run's seed."""
    return {**experiment_mapping(config, wildcards.experiment), "seed": int(wildcards.seed)}


def run_tags():
    """(experiment, ratio tag, fold, seed) of every run of the default target."""
    return [
        (exp, tag, fold, seed)
        for exp in TRAINING["run"]
        for tag in RATIO_TAGS
        for fold in SPLITS["folds"]
        for seed in SPLITS["seeds"]
    ]


def get_all_targets():
    targets = [
        f"results/data/{DATASET}/cases.tsv",
        f"results/nnunet/preprocessed/{NNUNET_FOLDER}/nnUNetPlans.json",
    ]
    if config["dataset"]["source"] == "synthetic":
        targets += [f"results/data/{DATASET}/overview.png", f"results/data/{DATASET}/threshold_baseline.tsv"]
    if config["dataset"]["source"] == "coca" and (config["dataset"].get("coca") or {}).get("part") == "nongated":
        return targets[:1]  # score-only cases (no label maps): imported for scoring a trained model, not trained on
    for seed in SPLITS["seeds"]:
        targets += split_files(seed)
    for exp, tag, fold, seed in run_tags():
        targets.append(f"results/evaluate/{DATASET}/{exp}/labeled{tag}/fold{fold}/seed{seed}/summary.json")
    return targets
