"""Rule import_case_sheet: validate the user's case sheet and every file it names; write it with absolute paths."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import pandas as pd
    from snakemake.utils import validate

    from s2cac.atomic import atomic_write_text
    from s2cac.data.cases import check_cases, load_case_sheet

    sheet = load_case_sheet(snakemake.input.sheet)
    schema = Path(snakemake.scriptdir).parent / "schemas" / "cases.schema.yaml"
    validate(pd.read_csv(snakemake.input.sheet, sep="\t", dtype=str, keep_default_na=False), str(schema))
    for c in check_cases(sheet):
        print(f"ok {c.case_id} shape {c.shape_zyx} spacing {c.spacing_zyx} labels {list(c.label_values)}")
    if "negative" in sheet.columns:
        sheet["negative"] = ["yes" if v else "no" for v in sheet["negative"]]
    atomic_write_text(snakemake.output.cases, sheet.to_csv(sep="\t", index=False))
