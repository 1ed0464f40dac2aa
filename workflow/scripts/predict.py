"""Rule predict: segment a model's test cases, restrict to >= threshold HU, score, QC pictures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import torch

    from s2cac.atomic import atomic_dir
    from s2cac.data.splits import read_test_cases
    from s2cac.inference import CaseInput, PredictOptions, load_model, predict_cases

    torch.set_num_threads(snakemake.threads)
    opts = dict(snakemake.params.options, device=snakemake.config["predict"]["device"])  # device: not a param
    checkpoint = opts.pop("checkpoint")
    test = read_test_cases(snakemake.input.cases, snakemake.input.split)
    cases = [CaseInput(cid, Path(img)) for cid, img in zip(test["case_id"], test["image"], strict=True)]
    model = load_model(Path(snakemake.input.model).parent, checkpoint=checkpoint)
    with atomic_dir(snakemake.output[0]) as tmp:
        results = predict_cases(model, cases, tmp, PredictOptions(**opts), log=sys.stderr)
    failed = [r.case for r in results if r.status != "ok"]
    if failed:
        raise RuntimeError(f"prediction failed for {len(failed)} case(s): {', '.join(failed)}")
