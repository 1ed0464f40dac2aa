"""Rule train: one model folder (resumes from checkpoint_latest.pth when rerun)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    import torch

    from s2cac.data.splits import read_split
    from s2cac.training.config import MethodConfig, experiment_mapping
    from s2cac.training.run import resolve_device, train_model

    torch.set_num_threads(snakemake.threads)
    # execution settings come from the config directly, not from params (changing them must not retrain)
    full = experiment_mapping(snakemake.config, snakemake.wildcards.experiment)
    execution = {k: full[k] for k in ("data_workers",) if k in full}
    summary = train_model(
        Path(snakemake.input.plans).parent,
        read_split(snakemake.input.split),
        MethodConfig.from_dict({**snakemake.params.method, **execution}),
        Path(snakemake.output.final).parent,
        fold=int(snakemake.wildcards.fold),
        device=resolve_device(snakemake.config["training"]["device"]),
    )
    print(json.dumps(summary, indent=2))
