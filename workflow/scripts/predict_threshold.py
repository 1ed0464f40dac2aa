"""Rule predict_threshold: the threshold-only reference method on the test cases (s2cac.paper.threshold)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import json

    from s2cac.atomic import atomic_dir
    from s2cac.data.cases import load_case_sheet
    from s2cac.paper.threshold import ThresholdCase, predict_threshold

    test = set(json.loads(Path(snakemake.input.split).read_text())["test"])
    sheet = load_case_sheet(snakemake.input.cases)
    regions = Path(snakemake.input.regions[0]) if snakemake.input.regions else None
    cases = []
    for _, row in sheet[sheet["case_id"].isin(test)].iterrows():
        region = regions / f"{row['case_id']}.nii.gz" if regions else None
        if region is None and row.get("heart_region"):
            region = Path(row["heart_region"])
        cases.append(ThresholdCase(row["case_id"], Path(row["image"]), region))
    with atomic_dir(snakemake.output[0]) as tmp:
        table = predict_threshold(cases, tmp, snakemake.params.threshold_hu)
    print(table.to_string(index=False))
