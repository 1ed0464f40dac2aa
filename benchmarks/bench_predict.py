"""Seconds per CT volume through ``s2cac predict``'s nnU-Net predictor: S2CAC ``tiny`` vs a plain nnU-Net U-Net.

Both networks run through the same ``nnUNetPredictor`` (same plans, patch, step 0.5, Gaussian weighting,
preprocessing and export to the input grid) in the same run, each in its own subprocess so that its peak
memory (ru_maxrss) is its own. Weights are random: this measures speed, not accuracy.

    .venv/bin/python benchmarks/bench_predict.py                       # 32 x 256 x 256, ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_predict.py --shape 64 512 512    # the full-size volume, ~7 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SPACING = (3.0, 0.369, 0.369)  # the paper's target spacing: no resampling, the network dominates


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


def run_variant(variant: str, shape: tuple[int, int, int], patch: tuple[int, int, int], threads: int) -> dict:
    """Predict one synthetic volume with one network; returns timings, parameter count and peak RSS."""
    import numpy as np
    import torch

    from s2cac.inference.model_io import LoadedModel
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.inference.predictor import make_predictor, predict_network_mask
    from s2cac.nets import build_network

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network("tiny", fg_prior=0.01)
    config = {"network": "tiny", "network_overrides": {"fg_prior": 0.01}, "use_score_head": True}
    model = LoadedModel(net.state_dict(), make_plans(patch, SPACING), make_dataset_json(), config, "bench")
    predictor = make_predictor(model, device="cpu", step=0.5)
    if variant == "s2cac_tiny":
        n_params = sum(
            p.numel() for n, p in net.named_parameters() if not n.startswith(("memory", "pos_", "conn", "score"))
        )
    else:
        plain = _plain_unet().eval()
        predictor.network, predictor.list_of_parameters = plain, [plain.state_dict()]
        n_params = sum(p.numel() for p in plain.parameters())
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 200, shape).clip(-1024, 1500).astype(np.int16)
    predict_network_mask(predictor, hu[: patch[0], : patch[1], : patch[2]], SPACING)  # warm-up
    t0 = time.perf_counter()
    mask = predict_network_mask(predictor, hu, SPACING)
    seconds = time.perf_counter() - t0
    assert mask.shape == hu.shape
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"variant": variant, "seconds": seconds, "params_seg_path": n_params, "peak_rss_mib": peak_mib}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 256, 256], metavar=("Z", "Y", "X"))
    parser.add_argument("--patch", type=int, nargs=3, default=[16, 128, 128], metavar=("Z", "Y", "X"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["s2cac_tiny", "plain_unet"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape, patch = tuple(args.shape), tuple(args.patch)
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, shape, patch, args.threads)))
        return 0
    results = {}
    for variant in ("plain_unet", "s2cac_tiny"):
        cmd = [sys.executable, __file__, "--variant", variant, "--shape", *map(str, shape), "--patch", *map(str, patch),
               "--threads", str(args.threads)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    base, ours = results["plain_unet"], results["s2cac_tiny"]
    print(f"volume {shape} (z, y, x) at {SPACING} mm, patch {patch}, step 0.5, Gaussian, no TTA, "
          f"CPU threads {args.threads}")  # fmt: skip
    print(f"{'network':<12} {'params(seg)':>11} {'s/volume':>9} {'peak RSS MiB':>13}")
    for r in (base, ours):
        print(f"{r['variant']:<12} {r['params_seg_path']:>11,d} {r['seconds']:>9.2f} {r['peak_rss_mib']:>13.0f}")
    print(f"ratio s2cac_tiny / plain_unet: time {ours['seconds'] / base['seconds']:.2f}x, "
          f"peak RSS {ours['peak_rss_mib'] / base['peak_rss_mib']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
