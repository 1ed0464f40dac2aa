"""CPU seconds per CT volume through ``s2cac predict``'s predictor, with and without exact window skipping,
against nnU-Net's own predictor running a plain nnU-Net U-Net of the same size.

The volume is a realistic 512 x 512 gated cardiac scan from the synthetic generator (adult anatomy in a
~220 mm field of view: body, lungs, heart with calcified plaques, aorta, spine, ribs, sternum, correlated
noise; ``s2cac.synth``), 0.43 mm pixels, 3 mm slices, resampled by nnU-Net to the plans' 0.369 mm. Variants,
each in its own subprocess (its own peak RSS and CPU time), all in the same run:

- ``nnunet_plain``: nnU-Net's ``nnUNetPredictor`` with a PlainConvUNet 8/16/32/32 (random weights), every window,
  one window per network call (nnU-Net's loop);
- ``tiny_before``: S2CAC ``tiny`` through our predictor as it was before window skipping (every window, one
  per call);
- ``tiny_noskip``: every window, ``window_batch`` windows per call;
- ``tiny_skip``: what ``s2cac predict`` now does: windows that cannot change a voxel >= 130 HU are skipped, and
  the network runs with BatchNorm folded into its convolutions and channels-last memory
  (``DualPathNet.fused_for_inference``);
- ``tiny_unfused``: ``tiny_skip`` with the network as trained (``make_predictor(..., fuse=False)``), i.e. what
  ``predict`` did before the fused network;
- ``tiny_voxel``: ``tiny_skip`` with the per-voxel decision (``decision="voxel"``: nnU-Net's argmax export, no
  probabilities, no candidate lesions); every other variant uses the default lesion rule
  (``s2cac.inference.lesions``), so ``tiny_skip`` / ``tiny_voxel`` is that rule's cost;
- ``tiny_step75``, ``tiny_step1``: ``tiny_skip`` with the sliding-window step 0.75 or 1.0 of the patch
  (``predict.step``, ``--step``) instead of 0.5: fewer windows, a different mask (the voxels where it differs
  from ``tiny_skip``'s are counted).

The exported masks (network AND HU >= 130) of ``tiny_skip`` and ``tiny_noskip`` must be identical (checked);
the voxels where they differ from ``tiny_before`` and ``tiny_unfused`` (float rounding of batched or folded
convolutions) are counted.
Weights are random: this measures speed, not accuracy. CPU time = the process's user + system seconds (all
its threads), reported beside wall time because the machine may be shared.

    .venv/bin/python benchmarks/bench_predict.py                     # 16 x 512 x 512, a few CPU-minutes
    .venv/bin/python benchmarks/bench_predict.py --slices 64         # the full-size scan
    .venv/bin/python benchmarks/bench_predict.py --variants tiny_skip paper_skip   # also the paper network
    .venv/bin/python benchmarks/bench_predict.py --slices 64 --census  # where the kept windows come from
    .venv/bin/python benchmarks/bench_predict.py --slices 64 --variants tiny_skip tiny_unfused  # fused network
    .venv/bin/python benchmarks/bench_predict.py --slices 64 --variants tiny_skip tiny_step75 tiny_step1  # steps
    .venv/bin/python benchmarks/bench_predict.py --slices 64 --variants tiny_skip tiny_noskip \
        --model results/models/synthetic/s2cac/labeled50/fold0/seed0     # a trained model (the demo's)
    .venv/bin/python benchmarks/bench_predict.py --slices 64 --device cuda --variants tiny_skip paper_skip  # GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

PLANS_SPACING = (3.0, 0.369, 0.369)  # the paper's target spacing
SCAN_SPACING_XY = 0.43
VARIANTS = (
    "nnunet_plain",
    "tiny_before",
    "tiny_noskip",
    "tiny_skip",
    "tiny_unfused",
    "tiny_voxel",
    "paper_skip",
    "tiny_step75",
    "tiny_step1",
)
#: sliding-window step per variant (``predict.step``); every other variant uses nnU-Net's default 0.5
STEPS = {"tiny_step75": 0.75, "tiny_step1": 1.0}
# initial calcium probability of the random networks: high enough that they mark voxels >= 130 HU, so that the
# mask comparisons below compare something (0.01 marked none; with the lesion rule on 16 slices 0.3 kept no
# lesion whole, 0.5 one voxel, 0.6 638 voxels, 0.7 nearly every candidate)
FG_PRIOR = 0.6
OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "predict"  # outputs, git-ignored


def _plain_unet():
    """nnU-Net's PlainConvUNet of a size similar to ``tiny``: 4 stages 8/16/32/32, in-plane pooling only."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    return PlainConvUNet(
        input_channels=1, n_stages=4, features_per_stage=[8, 16, 32, 32], conv_op=torch.nn.Conv3d,
        kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
        strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2], [1, 2, 2]], n_conv_per_stage=2, num_classes=2,
        n_conv_per_stage_decoder=2, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True},
    )  # fmt: skip


def phantom(slices: int):
    """(hu int16 (slices, 512, 512), spacing) of synthetic case 0, cached under results/benchmarks/predict/."""
    import numpy as np

    path = OUT / f"phantom_{slices}x512x512.npy"
    spacing = (3.0, SCAN_SPACING_XY, SCAN_SPACING_XY)
    if path.is_file():
        return np.load(path), spacing
    from s2cac.synth.cohort import synthesize_case
    from s2cac.synth.config import SynthConfig

    cfg = SynthConfig(
        n_cases=1, negative_fraction=0.0, shape_zyx=[slices, 512, 512], spacing_xy_mm=[SCAN_SPACING_XY] * 2
    )
    hu = synthesize_case(cfg, 0).hu
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(path, hu)
    return hu, spacing


def load_trained(path: Path):
    """A trained model for ``--model``: a folder's released checkpoint (predict's default), or a package's weights
    (a package holds one set). Raises :class:`s2cac.inference.model_io.ModelError` naming the file."""
    from s2cac.inference import load_model

    return load_model(path, checkpoint="best" if path.is_dir() else None)


def run_variant(
    variant: str,
    slices: int,
    patch: tuple[int, int, int],
    threads: int,
    window_batch: int,
    model_dir: Path | None,
    device: str = "cpu",
) -> dict:
    """Predict the phantom with one variant; returns seconds, CPU seconds, window counts and peak RSS.

    With ``model_dir`` the ``tiny_*`` variants run that trained model (its weights, plans spacing and patch)
    instead of the random network at :data:`PLANS_SPACING` and ``patch``."""
    import numpy as np
    import torch

    from s2cac.inference.model_io import LoadedModel
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.inference.predictor import make_predictor, predict_network_labels
    from s2cac.nets import build_network

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hu, spacing = phantom(slices)
    if model_dir is not None:
        model = load_trained(model_dir)
        state = model.state_dict
    else:
        preset = "paper" if variant.startswith("paper") else "tiny"
        net = build_network(preset, fg_prior=FG_PRIOR)
        config = {"network": preset, "network_overrides": {"fg_prior": FG_PRIOR}, "use_score_head": True}
        model = LoadedModel(net.state_dict(), make_plans(patch, PLANS_SPACING), make_dataset_json(), config, "bench")
        state = net.state_dict()
    batch = 1 if variant in ("nnunet_plain", "tiny_before") else window_batch
    fuse = variant not in ("nnunet_plain", "tiny_before", "tiny_unfused")
    decision = "voxel" if variant == "tiny_voxel" else "lesion"
    step = STEPS.get(variant, 0.5)
    predictor = make_predictor(model, device=device, step=step, window_batch=batch, fuse=fuse, decision=decision)
    cuda = predictor.device.type == "cuda"
    n_params = sum(  # the segmentation path's parameters (BatchNorm buffers are not parameters)
        p.numel()
        for n, p in state.items()
        if not n.startswith(("memory", "pos_", "conn", "score"))
        and not n.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    if variant == "nnunet_plain":
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        plain = _plain_unet().eval()
        base = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=False,
            perform_everything_on_device=False,
            device=torch.device("cpu"),
            allow_tqdm=False,
        )
        pm, cm, ds = predictor.plans_manager, predictor.configuration_manager, predictor.dataset_json
        base.manual_initialization(plain, pm, cm, [plain.state_dict()], ds, "PlainConvUNet", (0, 1, 2))
        predictor, n_params = base, sum(p.numel() for p in plain.parameters())
    threshold = CALCIUM_THRESHOLD_HU if variant.endswith(("_skip", "_unfused", "_voxel")) or step != 0.5 else None
    warm = predictor.configuration_manager.patch_size[0]
    predict_network_labels(predictor, hu[:warm, :256, :256], spacing, threshold_hu=threshold)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    labels, stats = predict_network_labels(predictor, hu, spacing, threshold_hu=threshold)
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    exported = (labels != 0) & (hu >= CALCIUM_THRESHOLD_HU)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / f"mask_{variant}_{slices}.npy", exported)
    return {
        "variant": variant,
        "wall_s": wall,
        "cpu_s": cpu,
        "windows_total": stats.windows_total if stats else None,
        "windows_run": stats.windows_run if stats else None,
        "parts_s": stats.seconds if stats else {},
        "params_seg_path": n_params,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "candidates": int((hu >= CALCIUM_THRESHOLD_HU).sum()),
        "exported_voxels": int(exported.sum()),
        "device": str(predictor.device),
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "plans_spacing": list(map(float, predictor.configuration_manager.spacing)),
        "patch": list(map(int, predictor.configuration_manager.patch_size)),
    }


def window_census(slices: int, patch: tuple[int, int, int], min_sizes=(1, 3, 10)) -> dict:
    """Windows ``predict`` keeps on the phantom, and how many it would keep if the candidates (HU >= 130) held
    only connected components of at least ``n`` voxels: where the kept windows come from (isolated noise voxels
    or bone and calcium). No network runs; diagnostic only (``predict`` keeps every candidate, so its masks stay
    exact)."""
    import numpy as np
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from scipy import ndimage

    from s2cac.hu import HUWindow, window_hu
    from s2cac.inference.model_io import LoadedModel
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.inference.predictor import make_predictor
    from s2cac.inference.window_skip import windows_to_keep
    from s2cac.nets import build_network

    hu, spacing = phantom(slices)
    net = build_network("tiny", fg_prior=FG_PRIOR)
    config = {"network": "tiny", "network_overrides": {"fg_prior": FG_PRIOR}, "use_score_head": True}
    model = LoadedModel(net.state_dict(), make_plans(patch, PLANS_SPACING), make_dataset_json(), config, "bench")
    predictor = make_predictor(model, device="cpu", step=0.5)
    props = {"spacing": list(spacing)}
    image = window_hu(hu, HUWindow()).astype(np.float32)[None]
    pre = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = pre.run_case_npy(
        image, None, props, predictor.plans_manager, predictor.configuration_manager, predictor.dataset_json
    )
    net_shape = data.shape[1:]
    padded = [max(n, p) for n, p in zip(net_shape, patch, strict=True)]
    pad_below = [(s - n) // 2 for s, n in zip(padded, net_shape, strict=True)]
    slicers = nnUNetPredictor._internal_get_sliding_window_slicers(predictor, padded)  # every window
    starts = [[sl.start for sl in s[1:]] for s in slicers]
    bbox = props["bbox_used_for_cropping"]
    cand = (hu >= CALCIUM_THRESHOLD_HU)[tuple(slice(a, b) for a, b in bbox)]
    labels, n = ndimage.label(cand)
    sizes = np.bincount(labels.ravel())
    out = {"windows_total": len(starts), "network_shape": list(map(int, net_shape))}
    for m in min_sizes:
        keep_label = sizes >= m
        keep_label[0] = False
        kept = windows_to_keep(keep_label[labels], net_shape, pad_below, starts, patch)
        out[f"kept_min{m}"] = int(kept.sum())
        out[f"candidates_min{m}"] = int(keep_label[labels].sum())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=16, help="slices of the 512 x 512 scan (default 16)")
    parser.add_argument("--patch", type=int, nargs=3, default=[16, 128, 128], metavar=("Z", "Y", "X"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window-batch", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS[:6]))
    parser.add_argument("--census", action="store_true", help="only count the windows kept (no network runs)")
    parser.add_argument(
        "--model",
        type=Path,
        help="a trained model folder or package: the tiny_* variants run it (its weights, spacing and patch; "
        "--patch is then ignored) instead of a random network at the paper's 0.369 mm",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu (default), cuda or cuda:N: where the windows run (a GPU figure)"
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    chosen = [args.variant] if args.variant else args.variants  # a child process runs one variant
    if args.device != "cpu" and "nnunet_plain" in chosen:
        parser.error("nnunet_plain is the CPU baseline; leave it out with --device cuda")
    if args.model is not None:
        if not args.model.exists():
            parser.error(f"--model {args.model}: no such model folder or file")
        if args.census or any(not v.startswith("tiny_") for v in chosen):
            parser.error("--model times a trained tiny model: use it with tiny_* variants, without --census")
        args.model = args.model.resolve()
        if not args.variant:  # the parent checks the model once, so that a damaged one is one clear line
            from s2cac.inference.model_io import ModelError

            try:
                load_trained(args.model)
            except ModelError as exc:
                parser.error(f"--model: {exc}")
    model_arg = [] if args.model is None else ["--model", str(args.model)]
    patch = tuple(args.patch)
    if args.variant:  # child process
        r = run_variant(args.variant, args.slices, patch, args.threads, args.window_batch, args.model, args.device)
        print(json.dumps(r))
        return 0
    import numpy as np

    if args.census:
        c = window_census(args.slices, patch)
        print(
            f"scan {args.slices} x 512 x 512, network grid {c['network_shape']}, patch {patch}: windows kept "
            f"{c['kept_min1']} of {c['windows_total']} ({c['candidates_min1']} voxels >= {CALCIUM_THRESHOLD_HU:g} HU)"
        )
        for m in (3, 10):
            print(
                f"  if only 6-connected components of >= {m} voxels >= {CALCIUM_THRESHOLD_HU:g} HU counted "
                f"({c[f'candidates_min{m}']} voxels): {c[f'kept_min{m}']} windows"
            )
        return 0
    phantom(args.slices)  # build the cached volume once, outside the timed children
    results = {}
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--variant", variant, "--slices", str(args.slices), "--patch",
               *map(str, patch), "--threads", str(args.threads), "--window-batch", str(args.window_batch),
               "--device", args.device, *model_arg]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[variant]), file=sys.stderr, flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"
    first = next(iter(results.values()))
    net = f"model {args.model}" if args.model else "random networks"
    print(f"scan {args.slices} x 512 x 512 at (3.0, {SCAN_SPACING_XY}, {SCAN_SPACING_XY}) mm -> plans "
          f"{tuple(first['plans_spacing'])} mm, patch {tuple(first['patch'])}, {net}, "
          f"step 0.5 (tiny_step*: 0.75, 1), Gaussian, no TTA, "
          f"torch threads {args.threads}, window batch {args.window_batch}, device {first['device']}, "
          f"load average {' '.join(load)}")  # fmt: skip
    print(f"{'variant':<13} {'params(seg)':>11} {'windows run':>12} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
    for r in results.values():
        win = f"{r['windows_run']}/{r['windows_total']}" if r["windows_total"] else "all"
        gpu = f"  GPU peak {r['gpu_peak_mib']:.0f} MiB" if r["gpu_peak_mib"] else ""
        print(f"{r['variant']:<13} {r['params_seg_path']:>11,d} {win:>12} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
              f"{r['peak_rss_mib']:>13.0f}{gpu}")  # fmt: skip
    ref = results.get("nnunet_plain") or results.get("tiny_before")
    for name, r in results.items():
        if ref is not None and r is not ref:
            print(f"CPU-time ratio {name} / {ref['variant']}: {r['cpu_s'] / ref['cpu_s']:.3f}  "
                  f"(wall {r['wall_s'] / ref['wall_s']:.3f})")  # fmt: skip
    if "tiny_skip" in results and "tiny_noskip" in results:
        s, n = results["tiny_skip"], results["tiny_noskip"]
        print(f"CPU-time ratio tiny_skip / tiny_noskip: {s['cpu_s'] / n['cpu_s']:.3f}; windows skipped "
              f"{s['windows_total'] - s['windows_run']} of {s['windows_total']}")  # fmt: skip
    masks = {v: np.load(OUT / f"mask_{v}_{args.slices}.npy") for v in results if not v.startswith(("nnunet", "paper"))}
    if "tiny_skip" in masks and "tiny_noskip" in masks:
        same = np.array_equal(masks["tiny_skip"], masks["tiny_noskip"])
        print(f"exported masks tiny_skip == tiny_noskip: {same} ({int(masks['tiny_skip'].sum())} voxels exported)")
        if not same:
            return 1
    for other in ("tiny_unfused", "tiny_before", *STEPS):
        if "tiny_skip" in masks and other in masks:
            diff = int((masks["tiny_skip"] != masks[other]).sum())
            print(f"exported voxels differing tiny_skip vs {other}: {diff} of {int(masks[other].sum())}")
    if "tiny_skip" in results and "tiny_unfused" in results:
        s, u = results["tiny_skip"], results["tiny_unfused"]
        print(f"CPU-time ratio tiny_skip / tiny_unfused: {s['cpu_s'] / u['cpu_s']:.3f}")
    if "tiny_skip" in results and "tiny_voxel" in results:
        s, v = results["tiny_skip"], results["tiny_voxel"]
        print(f"CPU-time ratio tiny_skip (lesion rule) / tiny_voxel: {s['cpu_s'] / v['cpu_s']:.3f} "
              f"(wall {s['wall_s'] - v['wall_s']:+.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
