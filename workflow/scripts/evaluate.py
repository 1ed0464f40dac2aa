"""Rule evaluate: test-set metrics of one model's predictions against the reference labels."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.data.atomic import atomic_dir
    from s2cac.data.cases import load_case_sheet
    from s2cac.data.nnunet_raw import LABELS
    from s2cac.evaluation.run import CaseFiles, evaluate

    test = set(json.loads(Path(snakemake.input.split).read_text())["test"])
    sheet = load_case_sheet(snakemake.input.cases)
    pred_dir = Path(snakemake.input.predictions)
    cases = [
        CaseFiles(cid, Path(img), Path(lab), pred_dir / f"{cid}_cac.nii.gz")
        for cid, img, lab in zip(sheet["case_id"], sheet["image"], sheet["label"], strict=True)
        if cid in test
    ]
    opts = dict(snakemake.params.options)
    if getattr(snakemake.params, "labels", "binary") == "arteries":  # both maps label arteries: per-artery agreement
        opts["arteries"] = {v: name for name, v in LABELS["arteries"].items() if v != 0}
    out = Path(snakemake.output.summary).parent
    with atomic_dir(out) as tmp:
        summary = evaluate(
            cases,
            tmp,
            n_boot=opts.pop("bootstrap"),
            seed=opts.pop("seed"),
            threshold_hu=snakemake.params.threshold_hu,
            **opts,
        )
    print(json.dumps({k: summary[k] for k in list(summary)[:3]}, indent=2, default=str))
