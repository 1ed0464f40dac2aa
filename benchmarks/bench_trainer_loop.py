"""Seconds per S2CAC training iteration (loader + train step) on real preprocessed data, with and without the
in-process speed-ups: the decompressed-case cache of the loaders (``s2cac.training.loaders.CaseCache``) and the
batched optimizer step and EMA update (``foreach``). Both variants compute exactly the same batches and weights
(tests/test_loaders.py, tests/test_training_switches.py); only the time differs.

The baseline is measured in the same process, interleaved with the new path (blocks of ``--block`` iterations
alternating), so machine load affects both alike. Needs the demo's preprocessed data and split (``make demo``, or
``snakemake --cores all results/splits/synthetic/seed0/fold0/labeled50.json``), or give your own.

    python benchmarks/bench_trainer_loop.py --threads 2 --blocks 6 --block 20
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def per_tensor_ema(teacher, student, alpha: float, buffers: bool = True) -> None:
    """The baseline: one multiply and one add per tensor, as before the batched update."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    if buffers:
        for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
            if t.dtype.is_floating_point:
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
            else:
                t.copy_(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preprocessed", type=Path, default=ROOT / "results/nnunet/preprocessed/Dataset501_synthetic")
    ap.add_argument("--split", type=Path, default=ROOT / "results/splits/synthetic/seed0/fold0/labeled50.json")
    ap.add_argument("--config", type=Path, default=ROOT / "config/config.yaml", help="workflow config (experiments)")
    ap.add_argument("--experiment", default="s2cac")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=6, help="timed blocks per variant")
    ap.add_argument("--block", type=int, default=20, help="iterations per block")
    ap.add_argument("--warmup", type=int, default=40, help="untimed iterations first (fills the cache)")
    args = ap.parse_args(argv)
    for name in ("threads", "blocks", "block"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    for path in (args.preprocessed, args.split, args.config):
        if not path.exists():
            ap.error(f"{path}: not found (run `make demo` first, or pass --preprocessed/--split/--config)")

    import yaml

    from s2cac.training.config import MethodConfig, experiment_mapping

    try:
        doc = yaml.safe_load(args.config.read_text())
        cfg = MethodConfig.from_dict({**experiment_mapping(doc, args.experiment), "seed": 0, "data_workers": 0})
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        ap.error(f"{args.config}: {exc}".splitlines()[0])
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="s2cac_bench_trainer_loop_") as tmp:
        return _run(args, cfg, Path(tmp))


def _run(args, cfg, out: Path) -> int:
    from s2cac.data.splits import read_split
    from s2cac.training import methods
    from s2cac.training.schedules import ema_update
    from s2cac.training.trainer import create_trainer

    with contextlib.redirect_stdout(io.StringIO()):
        tr = create_trainer(args.preprocessed, read_split(args.split), cfg, out, device="cpu")
        tr.on_train_start()
        tr.on_epoch_start()
        tr.on_train_epoch_start()
    sources = [s for s in tr.dataloader_train.parts.values() if s is not None]
    caches = [s.data_loader.cache for s in sources]

    def use(new: bool) -> None:
        for src, cache in zip(sources, caches, strict=True):
            src.data_loader.cache = cache if new else None
        for group in tr.optimizer.param_groups:
            group["foreach"] = new
        methods.ema_update = ema_update if new else per_tensor_ema

    try:
        for _ in range(args.warmup):
            tr.train_step(next(tr.dataloader_train))
        times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.blocks):
            for new in (False, True):
                use(new)
                loader_s, t0 = 0.0, time.perf_counter()
                for _ in range(args.block):
                    t1 = time.perf_counter()
                    batch = next(tr.dataloader_train)
                    loader_s += time.perf_counter() - t1
                    tr.train_step(batch)
                times[new].append(((time.perf_counter() - t0) / args.block, loader_s / args.block))
    finally:
        methods.ema_update = ema_update
        tr.dataloader_train.finish()
    med = {k: (statistics.median(t for t, _ in v), statistics.median(lo for _, lo in v)) for k, v in times.items()}
    cached = sum(c.nbytes for c in {id(c): c for c in caches if c is not None}.values())
    print(f"{args.experiment}, {args.threads} thread(s), {args.blocks} x {args.block} iterations each, interleaved")
    print(f"{'variant':<48} {'s/iter':>7} {'loader s':>9}")
    print(f"{'baseline (blosc2 per patch, per-tensor updates)':<48} {med[False][0]:>7.4f} {med[False][1]:>9.4f}")
    print(f"{'case cache + batched optimizer/EMA':<48} {med[True][0]:>7.4f} {med[True][1]:>9.4f}")
    ratio, loader_ratio = med[True][0] / med[False][0], med[True][1] / med[False][1]
    print(f"ratio s/iter new / baseline: {ratio:.3f} (loader {loader_ratio:.3f}); cache holds {cached / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
