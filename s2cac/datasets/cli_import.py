"""``s2cac import``: COCA (gated ROIs or non-gated scores) or a folder cohort -> cases.tsv, images/, labels/.

Exit codes: 0 done; 1 done, but some cases failed and were left out (``--skip-bad-cases``); 2 bad usage or input
(the message names the file); 130 interrupted (nothing half-written is left).
"""

from __future__ import annotations

import argparse
import json

from s2cac.datasets.cli_common import interruptible


def _label_map(text: str | None):
    if text is None or text == "orcascore":
        return text
    try:
        return {int(a): int(b) for a, b in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a preset (orcascore) or pairs like 1:2,2:3, got {text!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="{coca,folder}")
    coca = sub.add_parser("coca", help="the Stanford AIMI COCA release (gated ROIs, or non-gated scores)")
    coca.add_argument("--root", required=True, help="folder holding Gated_release_final/ (or deidentified_nongated/)")
    coca.add_argument("--out", required=True, help="cohort folder to write (cases.tsv, images/, labels/, import log)")
    coca.add_argument("--part", choices=("gated", "nongated"), default="gated")
    coca.add_argument("--skip-bad-cases", action="store_true", help="leave out and report failing cases (exit 1)")
    coca.add_argument("--limit", type=int, help="only the first N patients (a trial run)")
    coca.add_argument("--pixel-centre", type=float, choices=(0.0, 0.5), default=0.0,
                      help="coordinate of pixel (0, 0)'s centre in Point_px (default 0)")  # fmt: skip
    folder = sub.add_parser("folder", help="a folder of images and a folder of label maps, paired by case id")
    folder.add_argument("--images", required=True, help="image files (NIfTI/MHA/NRRD) or DICOM series folders")
    folder.add_argument("--labels", required=True, help="label maps named like the images")
    folder.add_argument("--out", required=True, help="cohort folder to write (cases.tsv, images/, labels/)")
    folder.add_argument("--image-suffix", default="", help="name ending removed from image names (e.g. _0000, CTI)")
    folder.add_argument("--label-suffix", default="", help="name ending removed from label names")
    folder.add_argument("--label-map", type=_label_map, help="orcascore, or pairs SRC:DST like 1:2,2:3,3:4")
    folder.add_argument("--missing-label", choices=("error", "skip"), default="error")


@interruptible
def run(args: argparse.Namespace) -> int:
    if args.kind == "coca":
        from s2cac.datasets.coca import import_gated, import_nongated

        common = {"skip_bad_cases": args.skip_bad_cases, "limit": args.limit}
        if args.part == "nongated":
            summary = import_nongated(args.root, args.out, **common)
        else:
            summary = import_gated(args.root, args.out, centre_offset=args.pixel_centre, **common)
    else:
        from s2cac.datasets.folder import import_folder

        summary = import_folder(
            args.images,
            args.labels,
            args.out,
            image_suffix=args.image_suffix,
            label_suffix=args.label_suffix,
            label_map=args.label_map,
            missing_label=args.missing_label,
        )
    print(json.dumps(summary, indent=2))
    return 1 if summary.get("failed_cases") else 0
