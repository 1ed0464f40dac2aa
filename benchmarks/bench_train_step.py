"""Seconds per training iteration and peak memory: S2CAC (tiny / paper) vs nnU-Net's default network.

One S2CAC iteration = student forward/backward on 2 labeled + 1 negative + 1 unlabeled patch, a teacher
forward on the noisy unlabeled patch, the four loss terms, SGD step and EMA update. The baseline is nnU-Net's
default trainer step on the same patch: its planned PlainConvUNet (nnU-Net's own topology rules for the
spacing and patch), batch 2, deep supervision, Dice + CE. Random tensors; no dataset needed.

    python benchmarks/bench_train_step.py --device auto --iters 10 --presets tiny,paper
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2cac.nets import build_network, count_parameters  # noqa: E402
from s2cac.training import losses as L  # noqa: E402
from s2cac.training.schedules import ema_alpha, ema_update  # noqa: E402

# (patch z, y, x), spacing (mm) per preset; paper = the method's, tiny = the CPU demo
SETTINGS = {"tiny": ((16, 64, 64), (3.0, 0.5, 0.5)), "paper": ((24, 256, 256), (3.0, 0.369, 0.369))}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _amp(dev: torch.device, dtype: torch.dtype):
    return torch.autocast("cuda", dtype=dtype) if dev.type == "cuda" else nullcontext()


def _time(step, iters: int, warmup: int, dev: torch.device) -> tuple[float, float]:
    for _ in range(warmup):
        step()
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(dev)
    per_iter = (time.perf_counter() - t0) / iters
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (Linux: KiB)
    return per_iter, peak


def s2cac_step(preset: str, patch, dev: torch.device, dtype: torch.dtype):
    student = build_network(preset, fg_prior=1e-3).to(dev).train()
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), 0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    scaler = torch.amp.GradScaler("cuda") if dev.type == "cuda" and dtype == torch.float16 else None
    x = torch.rand(4, 1, *patch, device=dev)
    y = (torch.rand(3, *patch, device=dev) > 0.999).long()
    state = {"step": 0}

    def step():
        opt.zero_grad(set_to_none=True)
        with _amp(dev, dtype):
            logits, scores = student(x)
            with torch.no_grad():
                t_logits, t_scores = teacher(x[3:] + (0.1 * torch.randn_like(x[3:])).clamp(-0.2, 0.2))
        terms = L.s2cac_loss_terms(
            sup_logits=logits[:3], sup_target=y, sup_amount=y.flatten(1).sum(1).float(),
            sup_weights=torch.tensor([1.0, 1.0, 0.01], device=dev), sup_scores=scores[:3], unl_logits=logits[3:],
            unl_scores=scores[3:], teacher_logits=t_logits, teacher_scores=t_scores, consistency=0.1,
            score_target="log1p_volume_mm3", voxel_volume_mm3=0.4, score_weight=1.0, score_consistency=True,
        )  # fmt: skip
        if scaler is not None:
            scaler.scale(terms["total"]).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(student.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 12)
            opt.step()
        ema_update(teacher, student, ema_alpha(state["step"]))
        state["step"] += 1

    return step, count_parameters(student), 4


def nnunet_step(patch, spacing, dev: torch.device, dtype: torch.dtype):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    _, pools, kernels, fitted, _ = get_pool_and_conv_props(list(spacing), list(patch), 4, 999999)
    n = len(pools)
    net = PlainConvUNet(
        1, n, [min(320, 32 * 2**i) for i in range(n)], torch.nn.Conv3d, kernels, pools, 2, 2, 2, conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, deep_supervision=True,
    ).to(dev)  # fmt: skip
    scales = [list(s) for s in 1 / np.cumprod(np.vstack(pools), axis=0)][:-1]
    w = np.array([1 / 2**i for i in range(len(scales))])
    w[-1] = 0
    loss = DeepSupervisionWrapper(
        DC_and_CE_loss(
            {"batch_dice": False, "smooth": 1e-5, "do_bg": False}, {}, dice_class=MemoryEfficientSoftDiceLoss
        ),
        w / w.sum(),
    )
    opt = torch.optim.SGD(net.parameters(), 0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    scaler = torch.amp.GradScaler("cuda") if dev.type == "cuda" and dtype == torch.float16 else None
    x = torch.rand(2, 1, *patch, device=dev)
    y = (torch.rand(2, 1, *patch, device=dev) > 0.999).float()
    targets = [torch.nn.functional.interpolate(y, scale_factor=tuple(s), mode="nearest") for s in scales]

    def step():
        opt.zero_grad(set_to_none=True)
        with _amp(dev, dtype):
            out = loss(net(x), targets)
        if scaler is not None:
            scaler.scale(out).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            out.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()

    return step, count_parameters(net), 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--presets", default=None, help="comma list; default tiny (CPU) or tiny,paper (CUDA)")
    ap.add_argument("--amp-dtype", default="float16", choices=("float16", "bfloat16"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    dev = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.amp_dtype == "float16" else torch.bfloat16
    presets = (args.presets or ("tiny,paper" if dev.type == "cuda" else "tiny")).split(",")
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    amp = f"AMP {args.amp_dtype}" if dev.type == "cuda" else "fp32"
    mem = "peak GPU memory allocated" if dev.type == "cuda" else "process peak RSS"
    print(
        f"device: {name}, {amp}, torch {torch.__version__}, {args.iters} timed iterations after {args.warmup} warm-up"
    )
    print(f"| model | patch (z,y,x) | patches/iter | parameters | s/iter | {mem} (GiB) | ratio vs nnU-Net |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in presets:
        patch, spacing = SETTINGS[preset]
        rows = []
        for label in (f"S2CAC {preset}", "nnU-Net default (PlainConvUNet)"):
            if label.startswith("S2CAC"):
                step, params, batch = s2cac_step(preset, patch, dev, dtype)
            else:
                step, params, batch = nnunet_step(patch, spacing, dev, dtype)
            sec, peak = _time(step, args.iters, args.warmup, dev)
            rows.append((label, batch, params, sec, peak))
            del step
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        base = rows[1][3]
        size = "x".join(map(str, patch))
        for label, batch, params, sec, peak in rows:
            ratio = f"{sec / base:.2f}" if label.startswith("S2CAC") else "1.00"
            print(f"| {label} | {size} | {batch} | {params / 1e6:.2f} M | {sec:.3f} | {peak:.2f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
