"""The operating point: how the network's decision threshold (``predict.calcium_probability``) trades Dice against
false positives, per trained model, and what choosing it on the validation scans gives on the test scans.

For each model folder (a trained model with its split.json) the validation and test scans of its split are
predicted once (nnU-Net's exported probabilities on the scan's grid, ``s2cac predict``'s predictor), and for every
threshold t the mask of the decision rule (``--decision``: ``lesion``, the default, keeps each candidate
lesion >= 130 HU whose mean P(calcium) > t; ``voxel`` = ``P(calcium) > t AND HU >= 130``) is evaluated as the
workflow evaluates masks. Printed per model and threshold: Dice on the scans with calcium, median false-positive
volume and share scored 0 on the negative scans, Agatston ICC(A,1) and risk-category agreement, for validation
and test; then, per model, the threshold with the highest pooled validation Dice (all validation scans' voxels
together, so that false positives on negative scans count) and the test metrics at it, beside t = 0.5 (the
default). The test scans play
no part in the choice. Models of the demo workflow after ``bench_learning.py``:

    python benchmarks/bench_operating_point.py                                  # s2cac, every seed
    python benchmarks/bench_operating_point.py --models results/models/synthetic/s2cac/labeled50/fold0/seed0
    python benchmarks/bench_operating_point.py --experiment supervised --thresholds 0.3 0.5 0.7
    python benchmarks/bench_operating_point.py --decision voxel                 # the per-voxel rule
    python benchmarks/bench_operating_point.py --thresholds 0.5 --step 1        # windows without overlap
    python benchmarks/bench_operating_point.py --thresholds 0.5 --checkpoint final  # the last epoch's teacher

Nothing is timed; it reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def sweep(
    model_dir: Path,
    cases_tsv: Path,
    thresholds: list[float],
    threads: int,
    decision: str,
    step: float = 0.5,
    checkpoint: str = "best",
) -> pd.DataFrame:
    """One row per (part, case, threshold) with the evaluation of that threshold's mask."""
    import torch

    from s2cac.data.cases import load_case_sheet
    from s2cac.evaluation.cohort import evaluate_case
    from s2cac.hu import HUWindow, window_channels
    from s2cac.inference import load_model
    from s2cac.inference.lesions import lesion_labels
    from s2cac.inference.predictor import make_predictor
    from s2cac.io import read_ct, read_label_map
    from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

    torch.set_num_threads(threads)
    split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))
    sheet = load_case_sheet(cases_tsv).set_index("case_id")
    predictor = make_predictor(load_model(model_dir, checkpoint=checkpoint), device="cpu", step=step)
    windows = tuple(predictor.hu_windows or (HUWindow(),))
    rows = []
    for part in ("validation", "test"):
        for case in split[part]:
            hu, geom = read_ct(sheet.loc[case, "image"])
            ref, _ = read_label_map(sheet.loc[case, "label"], geom)
            image = window_channels(hu, windows).astype(np.float32)
            _, _, probs = predictor.predict_labels(image, geom.spacing_zyx, None, True)  # every window
            calcium_p, candidates = 1.0 - probs[0], hu >= CALCIUM_THRESHOLD_HU
            for t in thresholds:
                if decision == "lesion":
                    mask = (lesion_labels(probs, candidates, t) != 0).astype(np.uint8)
                else:
                    mask = ((calcium_p > t) & candidates).astype(np.uint8)
                r = evaluate_case(hu, mask, ref, geom.spacing_zyx)
                both = int(((mask != 0) & (ref != 0)).sum())
                rows.append({
                    "part": part, "case_id": case, "t": t, "dice": r["dice"],
                    "both": both, "pred": int(mask.sum()), "ref": int((ref != 0).sum()),
                    **{k: r[k] for k in ("agatston_pred", "agatston_ref", "volume_mm3_pred", "risk_pred", "risk_ref")},
                })  # fmt: skip
            print(f"  {model_dir}: {part} {case} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def metrics(g: pd.DataFrame) -> dict[str, float]:
    """The learning table's metrics of one (model, part, threshold) group."""
    from s2cac.evaluation.stats import icc_a1

    pos, neg = g[g.agatston_ref > 0], g[g.agatston_ref == 0]
    return {
        "dice_pos": float(pos.dice.mean()),
        "pooled_dice": float(2 * g.both.sum() / max(g.pred.sum() + g.ref.sum(), 1)),
        "fp_neg_median": float(neg.volume_mm3_pred.median()) if len(neg) else float("nan"),
        "neg_zero": float((neg.agatston_pred == 0).mean()) if len(neg) else float("nan"),
        "icc": float(icc_a1(np.stack([g.agatston_pred.to_numpy(), g.agatston_ref.to_numpy()], axis=1))),
        "risk": float((g.risk_pred == g.risk_ref).mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, help="model folders (default: --experiment's seeds)")
    parser.add_argument("--experiment", default="s2cac")
    parser.add_argument("--cases", type=Path, default=REPO / "results/data/synthetic/cases.tsv")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decision", choices=("lesion", "voxel"), default="lesion",
                        help="the decision rule the threshold applies to (predict.decision)")  # fmt: skip
    parser.add_argument("--step", type=float, default=0.5, help="sliding-window step (predict.step)")
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="which checkpoint of each model (predict.checkpoint)")  # fmt: skip
    args = parser.parse_args()
    models = args.models or sorted(
        (REPO / "results/models/synthetic" / args.experiment / "labeled50/fold0").glob("seed*")
    )
    if not models:
        parser.error(f"no model folders for experiment {args.experiment!r}; train them first (bench_learning.py)")
    if 0.5 not in args.thresholds:
        args.thresholds.append(0.5)
    table, chosen = [], []
    for model_dir in models:
        df = sweep(
            model_dir, args.cases, sorted(args.thresholds), args.threads, args.decision, args.step, args.checkpoint
        )
        per = {(p, t): metrics(g) for (p, t), g in df.groupby(["part", "t"])}
        for (part, t), m in sorted(per.items()):
            table.append({"model": str(model_dir), "part": part, "t": t, **m})
        best_t = max(sorted(args.thresholds), key=lambda t: per[("validation", t)]["pooled_dice"])
        chosen.append({"model": str(model_dir), "t_chosen": best_t,
                       **{f"{k}@0.5": v for k, v in per[("test", 0.5)].items()},
                       **{f"{k}@chosen": v for k, v in per[("test", best_t)].items()}})  # fmt: skip
    pd.set_option("display.width", 200)
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    ch = pd.DataFrame(chosen)
    print("\nthreshold chosen on the validation scans (highest pooled Dice), test-scan metrics at 0.5 and at it:")
    print(ch.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    keys = ("dice_pos", "fp_neg_median", "neg_zero", "icc", "risk")
    print("\nmean over models:  " + "  ".join(
        f"{k} {ch[f'{k}@0.5'].mean():.3f} -> {ch[f'{k}@chosen'].mean():.3f}" for k in keys))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
