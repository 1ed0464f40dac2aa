"""Rule evaluate: test-set metrics of one model's predictions against the reference labels."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.atomic import atomic_dir
    from s2cac.data.nnunet_raw import LABELS
    from s2cac.data.splits import read_test_cases
    from s2cac.evaluation.options import EvaluationOptions
    from s2cac.evaluation.run import CaseFiles, evaluate

    test = read_test_cases(snakemake.input.cases, snakemake.input.split)
    pred_dir = Path(snakemake.input.predictions)
    cases = [
        CaseFiles(cid, Path(img), Path(lab), pred_dir / f"{cid}_cac.nii.gz")
        for cid, img, lab in zip(test["case_id"], test["image"], test["label"], strict=True)
    ]
    opts = dict(snakemake.params.options)
    n_boot, seed = opts.pop("bootstrap"), opts.pop("seed")
    # one threshold: the masks were cut at predict.threshold_hu, and they are scored with it
    if getattr(snakemake.params, "labels", "binary") == "arteries":  # both maps label arteries: per-artery agreement
        opts["arteries"] = {v: name for name, v in LABELS["arteries"].items() if v != 0}
    options = EvaluationOptions.from_mapping({**opts, "threshold_hu": snakemake.params.threshold_hu})
    out = Path(snakemake.output.summary).parent
    with atomic_dir(out) as tmp:
        summary = evaluate(cases, tmp, options, n_boot=n_boot, seed=seed)
    print(json.dumps({k: summary[k] for k in list(summary)[:3]}, indent=2, default=str))
