"""Child process of :func:`s2cac.data.preprocess.run_preprocessing` (not a public entry point).

Runs with ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` already set in its environment, so
nnU-Net's module-level path constants point at this job's folders. Argument: one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _planner_class():
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    from nnunetv2.paths import nnUNet_preprocessed

    class S2CACPlanner(ExperimentPlanner):
        """nnU-Net's default planner, keeping only ``configuration`` and optionally a fixed patch size."""

        configuration: str = ""  # s2cac.nnunet.CONFIGURATION, passed in the job
        patch_size_override: list[int] | None = None

        def plan_experiment(self):
            plans = super().plan_experiment()
            cfg = plans["configurations"][self.configuration]
            if self.patch_size_override is not None:
                patch = np.array(self.patch_size_override)
                n_pool, pools, kernels, fitted, _ = get_pool_and_conv_props(
                    cfg["spacing"], patch, self.UNet_featuremap_min_edge_length, 999999
                )
                if list(fitted) != list(patch):
                    print(f"note: nnU-Net's default U-Net would prefer patch {list(fitted)}; keeping {list(patch)}")
                arch = cfg["architecture"]["arch_kwargs"]
                n = len(pools)
                arch.update(
                    n_stages=n,
                    features_per_stage=[
                        min(self.UNet_max_features_3d, self.UNet_base_num_features * 2**i) for i in range(n)
                    ],
                    kernel_sizes=kernels,
                    strides=pools,
                    n_conv_per_stage=list(self.UNet_blocks_per_stage_encoder[:n]),
                    n_conv_per_stage_decoder=list(self.UNet_blocks_per_stage_decoder[: n - 1]),
                )
                cfg["patch_size"] = [int(p) for p in patch]
            plans["configurations"] = {self.configuration: cfg}
            self.plans = plans
            # save_plans would merge the configurations already saved by super() (2d, 3d_lowres): start afresh.
            plans_file = Path(nnUNet_preprocessed) / self.dataset_name / f"{self.plans_identifier}.json"
            plans_file.unlink(missing_ok=True)
            self.save_plans(plans)
            return plans

    return S2CACPlanner


def main(job: dict) -> None:
    from batchgenerators.utilities.file_and_folder_operations import join
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    dataset_id, n = job["dataset_id"], job["num_processes"]
    name = convert_id_to_dataset_name(dataset_id)
    print(f"[preprocess] verifying {name}", flush=True)
    verify_dataset_integrity(join(nnUNet_raw, name), n)
    print("[preprocess] extracting the dataset fingerprint", flush=True)
    DatasetFingerprintExtractor(dataset_id, n, verbose=False).run(overwrite_existing=True)
    print("[preprocess] planning", flush=True)
    planner_cls = _planner_class()
    planner_cls.configuration = job["configuration"]
    planner_cls.patch_size_override = job["patch_size"]
    planner = planner_cls(
        dataset_id,
        plans_name=job["plans_identifier"],
        overwrite_target_spacing=job["target_spacing"],
        suppress_transpose=True,  # keep (z, y, x): z is the thick-slice axis, as the network expects
    )
    plans = planner.plan_experiment()
    cfg = plans["configurations"][job["configuration"]]
    print(f"[preprocess] {job['configuration']}: spacing {cfg['spacing']} mm, patch {cfg['patch_size']}", flush=True)
    preprocess_dataset(dataset_id, job["plans_identifier"], (job["configuration"],), [n], show_progress_bar=False)
    print("[preprocess] done", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
