# Shared helpers: config validation and input functions.
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DATASET = config["dataset"]["name"]
NNUNET_FOLDER = f"Dataset{int(config['dataset']['nnunet_id']):03d}_{DATASET}"
REPO = Path(workflow.basedir)
SPLITS = config["splits"]
# What the network learns: binary calcium (the paper's) or the four arteries (1 LM, 2 LAD, 3 LCX, 4 RCA). Only a
# non-default mode becomes a rule param (LABEL_PARAMS), so binary configurations keep the params they had before
# the option existed and adding it re-ran nothing.
LABELS = config["preprocess"]["labels"]
LABEL_PARAMS = {"labels": LABELS} if LABELS != "binary" else {}
# Further input channels (other HU windows beside the method's); a param only when some are configured.
EXTRA_WINDOWS = config["preprocess"].get("extra_windows") or []
WINDOW_PARAMS = {"extra_windows": EXTRA_WINDOWS} if EXTRA_WINDOWS else {}


sys.path.insert(0, str(REPO))  # the workflow imports s2cac (config checks, path tags, stage versions)
from s2cac.data.splits import ratio_tag  # the one definition of the labeled{pct} path tag

RATIO_TAGS = [ratio_tag(r) for r in SPLITS["labeled_ratios"]]

if config["dataset"]["source"] == "case_sheet" and not config["dataset"].get("case_sheet"):
    raise ValueError("config: dataset.source is case_sheet but dataset.case_sheet (the TSV path) is not set")
if config["dataset"]["source"] == "case_sheet":
    from s2cac.data.cases import CaseSheetError, check_sheet_files, load_case_sheet

    try:  # columns, ids and that every named file exists, now (-n too); the import job reads every file
        check_sheet_files(load_case_sheet(config["dataset"]["case_sheet"]))
    except CaseSheetError as err:
        raise ValueError(f"config: dataset.case_sheet: {err}") from None
if config["dataset"]["source"] == "synthetic":
    from s2cac.synth.config import SynthConfig

    config["dataset"].setdefault("synthetic", {})
    try:  # reject typos in the generator's options now, not when the job runs
        SynthConfig.from_dict(dict(config["dataset"]["synthetic"]))
    except ValueError as err:
        raise ValueError(f"config: dataset.synthetic: {err}") from None
for fold in SPLITS["folds"]:
    if fold >= SPLITS["n_folds"]:
        raise ValueError(f"config: splits.folds has fold {fold} but splits.n_folds is {SPLITS['n_folds']}")


from s2cac.stages import STAGE_VERSIONS  # each rule's params hold its stage's result version (re-run policy)


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
    from s2cac.training.config import MethodConfig, experiment_mapping
    from s2cac.training.config_check import check_workflow_config

    try:  # unknown keys and wrong types, blamed on training.defaults or the experiment that holds them
        check_workflow_config(config)
    except ValueError as err:
        raise ValueError(f"config: {err}") from None
    for name in EXPERIMENTS:  # reject typos and impossible switch combinations now, not hours into a job
        try:
            MethodConfig.from_dict(experiment_mapping(config, name))
        except ValueError as err:
            raise ValueError(f"config: experiments.{name}: {err}") from None


# Method-config keys that are execution settings: they change how fast a run goes, not its result, so they are
# kept out of the train rule's params (changing them must not retrain); workflow/scripts/train.py adds them back.
EXECUTION_KEYS = ("data_workers",)


def get_method(wildcards):
    """Resolved method mapping of an experiment (training.defaults + experiments[name]) with the run's seed,
    without the execution settings (EXECUTION_KEYS)."""
    method = experiment_mapping(config, wildcards.experiment)
    return {**{k: v for k, v in method.items() if k not in EXECUTION_KEYS}, "seed": int(wildcards.seed)}


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
    return targets + paper_targets()


# --- paper outputs (results/paper/{dataset}/): the plan of s2cac.paper.collect, built once from the config ---
from s2cac.paper.collect import cohort_note, experiments_of, plan_runs
from s2cac.paper.threshold import THRESHOLD_EXPERIMENT

if THRESHOLD_EXPERIMENT in EXPERIMENTS:
    raise ValueError(f"config: experiments.{THRESHOLD_EXPERIMENT}: the name is reserved for the threshold-only method")


def _paper_plan():
    """The paper plan (docs: config/README.md, `paper`), or None when there is nothing to compare."""
    cfg = config.setdefault("paper", {})
    if not EXPERIMENTS or (config["dataset"]["source"] == "coca" and (config["dataset"].get("coca") or {}).get("part") == "nongated"):
        return None
    run = list(TRAINING["run"])
    method = cfg.get("method") or ("s2cac" if "s2cac" in run else (run[0] if run else None))
    if method is None:
        return None
    ablations = cfg.get("ablations")
    if ablations is None:
        ablations = [e for e in run if e.startswith(f"{method}_")]
    baselines = cfg.get("baselines")
    if baselines is None:
        baselines = [e for e in run if e != method and e not in ablations]
    for key, names in (("method", [method]), ("baselines", baselines), ("ablations", ablations)):
        for name in names:
            if name not in EXPERIMENTS:
                raise ValueError(f"config: paper.{key} names {name!r}, which is not under experiments: {sorted(EXPERIMENTS)}")
    main = cfg.get("main_ratio")
    if main is not None and ratio_tag(main) not in RATIO_TAGS:
        raise ValueError(f"config: paper.main_ratio {main} is not one of splits.labeled_ratios {SPLITS['labeled_ratios']}")
    nsb = {}
    for name in [*baselines, method, *ablations]:
        m = MethodConfig.from_dict(experiment_mapping(config, name))
        if m.use_negatives and m.nsb.enabled:
            nsb[name] = {"a": m.nsb.a, "b": m.nsb.b, "tau": m.nsb.tau, "epochs": m.epochs}
    return {
        "dataset": DATASET,
        "cohort": cohort_note(DATASET, config["dataset"]["source"], cfg.get("cohort")),
        "method": method,
        "baselines": list(baselines),
        "threshold": bool(cfg.get("threshold", True)),
        "ablations": list(ablations),
        "main_ratio": ratio_tag(main) if main is not None else RATIO_TAGS[0],
        "ratios": RATIO_TAGS,
        "folds": list(SPLITS["folds"]),
        "seeds": list(SPLITS["seeds"]),
        "threshold_hu": config["predict"]["threshold_hu"],
        "qualitative_cases": int(cfg.get("qualitative_cases", 4)),
        "nsb": nsb,
    }


PAPER = _paper_plan()
PAPER_DIR = f"results/paper/{DATASET}"
PAPER_TABLES = ["main", "ablation", "label_ratio", "wilcoxon"]
PAPER_FIGURES = ["dice_vs_ratio", "agatston_agreement", "risk_confusion", "qualitative", "training_curves",
                 "nsb_schedule"]


def paper_evaluations(experiments=None):
    """summary.json and per_case.csv of every run of the plan (or of ``experiments``)."""
    return [
        str(run.path("evaluate", DATASET) / name)
        for run in plan_runs(PAPER, experiments)
        for name in ("summary.json", "per_case.csv")
    ]


def paper_predictions():
    """Prediction folders of the qualitative grid and of the threshold's region names (main ratio)."""
    return [str(run.path("predict", DATASET)) for run in plan_runs(PAPER) if run.ratio == PAPER["main_ratio"]
            and run.experiment not in PAPER["ablations"]]


def paper_models():
    """Final checkpoints of the learned runs at the main ratio (their training_log.txt feeds the curves)."""
    return [str(run.path("models", DATASET) / "checkpoint_final.pth") for run in plan_runs(PAPER)
            if run.ratio == PAPER["main_ratio"] and run.experiment != THRESHOLD_EXPERIMENT]


def paper_targets():
    """Every output of the `paper` target."""
    if PAPER is None:
        return []
    return (
        [f"{PAPER_DIR}/tables/{t}.{e}" for t in PAPER_TABLES for e in ("csv", "md", "tex")]
        + [f"{PAPER_DIR}/tables/runs.csv", f"{PAPER_DIR}/tables/headline.txt"]
        + [f"{PAPER_DIR}/figures/{f}.{e}" for f in PAPER_FIGURES for e in ("png", "pdf")]
        + [f"{PAPER_DIR}/{f}" for f in ("config.yaml", "software.csv", "walltime.csv", "walltime.md")]
        + [f"{PAPER_DIR}/experiments/{e}.md" for e in experiments_of(PAPER)]
    )


def experiment_targets(name):
    """Outputs of one experiment's target: its evaluations (hence its trainings and predictions) and its own
    summary table; nothing of the other experiments."""
    return paper_evaluations([name]) + [f"{PAPER_DIR}/experiments/{name}.csv", f"{PAPER_DIR}/experiments/{name}.md"]
