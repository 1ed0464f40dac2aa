"""Trained models on disk: a model folder written by training, or a single packaged file (``export-model``).

A **model folder** (``s2cac train`` writes one; see docs/training.md) holds ``plans.json`` and
``dataset.json`` (nnU-Net v2), the resolved method config (``config.yaml`` or ``config.json``: at least
``network`` = a preset of :data:`s2cac.nets.PRESETS`) and a checkpoint (``checkpoint_best.pth`` preferred, then
``checkpoint_final.pth``; see :data:`TEACHER_CHECKPOINTS`) whose ``network_weights`` are the teacher's. The
checkpoint's ``network_kwargs`` (exact constructor arguments) and ``inference_allowed_mirroring_axes`` take
precedence over the config file's; its ``method_config`` must agree with the config file on the network.

A **package** is a zip file with exactly these members::

    manifest.json   format, s2cac version, network spec, configuration, sha256 of every other member
    weights.pt      teacher state_dict (torch.save of a dict of tensors)
    plans.json  dataset.json  config.json

Loading verifies every checksum, refuses extra or missing members, loads weights with
``torch.load(weights_only=True)`` only, and checks that plans, dataset.json, config and weights agree.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from s2cac import __version__
from s2cac.atomic import atomic_path
from s2cac.hu import HUWindow, windows_from_dataset_json
from s2cac.nnunet import CHANNEL_SCHEME, CONFIGURATION, PLANS_SCHEME

PACKAGE_FORMAT = "s2cac-model"
PACKAGE_FORMAT_VERSION = 1
WEIGHTS_MEMBER = "weights.pt"
JSON_MEMBERS = ("plans.json", "dataset.json", "config.json")
#: Teacher checkpoint file names searched in a model folder, most preferred first.
TEACHER_CHECKPOINTS = (
    "checkpoint_best.pth",
    "checkpoint_final.pth",
    "checkpoint_teacher_best.pth",
    "checkpoint_best_teacher.pth",
    "teacher_best.pth",
    "checkpoint_teacher_final.pth",
    "checkpoint_final_teacher.pth",
    "teacher_final.pth",
    "checkpoint_teacher_latest.pth",
    "checkpoint_teacher.pth",
    "teacher.pth",
)
#: Keys under which a checkpoint dict may hold the teacher's state_dict, most preferred first.
WEIGHT_KEYS = ("teacher_weights", "teacher_state_dict", "teacher", "ema_weights", "network_weights", "state_dict")
DEFAULT_MIRROR_AXES = (0, 1, 2)


class ModelError(ValueError):
    """A model folder or package is unusable, tampered with or inconsistent; the message says why."""


@dataclass
class LoadedModel:
    """A verified model: everything the predictor needs.

    Attributes:
        state_dict: teacher weights (CPU tensors).
        plans: nnU-Net plans dict.
        dataset_json: nnU-Net dataset.json dict.
        config: resolved method config (``network``, ``network_overrides``, ...).
        source: where it was loaded from.
        manifest: the package manifest (empty for a folder).
    """

    state_dict: dict[str, torch.Tensor]
    plans: dict[str, Any]
    dataset_json: dict[str, Any]
    config: dict[str, Any]
    source: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def hu_window(self) -> HUWindow:
        """The HU window of channel 0 (dataset.json ``s2cac_hu_window``; the method's by default)."""
        return self.hu_windows[0]

    @property
    def hu_windows(self) -> tuple[HUWindow, ...]:
        """The HU windows of every input channel, in channel order (:func:`s2cac.hu.windows_from_dataset_json`)."""
        return windows_from_dataset_json(self.dataset_json)

    @property
    def training_data(self) -> dict[str, Any] | None:
        """What the model was trained on (dataset.json ``s2cac_training_data``; see
        :func:`s2cac.inference.scan_qc.describe_training_data`), None when not recorded."""
        info = self.dataset_json.get("s2cac_training_data")
        return info if isinstance(info, dict) and info else None

    @property
    def network_spec(self) -> dict[str, Any]:
        """Network preset, overrides and score-head switch, as recorded in the config."""
        return network_spec(self.config, self.state_dict)

    @property
    def mirror_axes(self) -> tuple[int, ...]:
        """Axes nnU-Net may mirror for test-time augmentation."""
        axes = self.config.get("inference_allowed_mirroring_axes", DEFAULT_MIRROR_AXES)
        return tuple(int(a) for a in axes)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The plans' (z, y, x) patch size."""
        return tuple(int(p) for p in self.plans["configurations"][CONFIGURATION]["patch_size"])

    def build_network(self):
        """A fresh :class:`~s2cac.nets.DualPathNet` of this model's architecture (weights not loaded)."""
        from s2cac.nets import build_network

        spec = self.network_spec
        return build_network(spec["preset"], use_score_head=spec["use_score_head"], **spec["overrides"])


def network_spec(config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Network description from a resolved config: ``{"preset", "overrides", "use_score_head"}``.

    ``use_score_head`` follows the config; if absent, whether the weights hold the transformer path.
    """
    preset = config.get("network")
    if not isinstance(preset, str):
        raise ModelError("config has no 'network' preset name (e.g. 'paper' or 'tiny')")
    overrides = dict(config.get("network_overrides") or {})
    overrides.pop("use_score_head", None)
    use_score = config.get("use_score_head")
    if use_score is None:
        use_score = state_dict is None or any(k == "memory" or k.startswith("connections.") for k in state_dict)
    return {"preset": preset, "overrides": overrides, "use_score_head": bool(use_score)}


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _load_weights(data: bytes | Path, where: str) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a state_dict or a checkpoint dict holding one."""
    return _load_checkpoint(data, where)[0]


def _load_checkpoint(data: bytes | Path, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, the checkpoint's other entries) via ``torch.load(weights_only=True)``."""
    from s2cac.training.checkpoint import CheckpointError, safe_torch_load

    try:
        obj = safe_torch_load(io.BytesIO(data) if isinstance(data, bytes) else data, where)
    except CheckpointError as err:
        raise ModelError(str(err)) from err
    if not isinstance(obj, dict):
        raise ModelError(f"{where}: expected a dict of tensors or a checkpoint dict, got {type(obj).__name__}")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    meta = {k: v for k, v in obj.items() if not k.endswith(("_weights", "_state", "_state_dict"))}
    for key in WEIGHT_KEYS:
        sd = obj.get(key)
        if isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
            return {k.removeprefix("module."): v for k, v in sd.items()}, meta
    raise ModelError(f"{where}: no state_dict found (looked for a dict of tensors or the keys {list(WEIGHT_KEYS)})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelError(f"{path}: missing") from err
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not readable JSON: {err}") from err
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return obj


def _merge_checkpoint_meta(config: dict[str, Any], meta: dict[str, Any], where: str) -> dict[str, Any]:
    """Config with the checkpoint's exact network kwargs and mirroring axes; refuse disagreements."""
    config = dict(config)
    method = meta.get("method_config")
    if isinstance(method, dict):
        for key in ("network", "network_overrides", "use_score_head"):
            if key in method and key in config and method[key] != config[key]:
                raise ModelError(
                    f"{where}: checkpoint was trained with {key}={method[key]!r} but the config says {config[key]!r}"
                )
        config.setdefault("network", method.get("network"))
    kwargs = meta.get("network_kwargs")
    if isinstance(kwargs, dict):
        kwargs = dict(kwargs)
        if "use_score_head" in kwargs:
            config["use_score_head"] = bool(kwargs.pop("use_score_head"))
        config["network_overrides"] = kwargs
    if meta.get("inference_allowed_mirroring_axes") is not None:
        config["inference_allowed_mirroring_axes"] = [int(a) for a in meta["inference_allowed_mirroring_axes"]]
    return config


def _read_config(folder: Path) -> dict[str, Any]:
    for name in ("config.json", "resolved_config.json"):
        if (folder / name).is_file():
            return _read_json(folder / name)
    for name in ("config.yaml", "resolved_config.yaml"):
        if (folder / name).is_file():
            import yaml

            obj = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
            if not isinstance(obj, dict):
                raise ModelError(f"{folder / name}: expected a mapping")
            return obj
    raise ModelError(f"{folder}: no resolved config (config.json) in the model folder")


def find_teacher_checkpoint(folder: Path) -> Path:
    """The preferred teacher checkpoint of a model folder (see :data:`TEACHER_CHECKPOINTS`)."""
    for name in TEACHER_CHECKPOINTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*teacher*.pth"))
    if found:
        return found[0]
    runs = sorted(p.name for p in folder.glob("*/") if (p / "plans.json").is_file() or any(p.glob("*/plans.json")))
    if runs:
        raise ModelError(
            f"{folder}: not a model folder, but it holds {', '.join(runs[:5])}: give one of them "
            f"(a model folder is .../fold<f>/seed<s>, with plans.json and a checkpoint)"
        )
    raise ModelError(f"{folder}: no teacher checkpoint; expected one of {list(TEACHER_CHECKPOINTS)}")


def load_model_folder(folder: str | Path, checkpoint: str | Path | None = None) -> LoadedModel:
    """Load and verify a model folder written by training (teacher weights unless ``checkpoint`` is given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a model folder")
    if checkpoint in ("best", "final"):
        checkpoint = folder / f"checkpoint_{checkpoint}.pth"
    elif checkpoint is not None and not Path(checkpoint).is_absolute() and (folder / checkpoint).is_file():
        checkpoint = folder / checkpoint  # a name inside the model folder
    ckpt = Path(checkpoint) if checkpoint is not None else find_teacher_checkpoint(folder)
    if not ckpt.is_file():
        raise ModelError(f"{ckpt}: no such checkpoint")
    state_dict, meta = _load_checkpoint(ckpt, str(ckpt))
    model = LoadedModel(
        state_dict=state_dict,
        plans=_read_json(folder / "plans.json"),
        dataset_json=_read_json(folder / "dataset.json"),
        config=_merge_checkpoint_meta(_read_config(folder), meta, str(ckpt)),
        source=str(folder),
    )
    check_model(model)
    return model


def load_package(path: str | Path) -> LoadedModel:
    """Load a packaged model file, verifying its manifest, every checksum and the model's consistency."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelError(f"{path}: not an s2cac model package (zip): {err}") from err
    with zf:
        names = set(zf.namelist())
        if "manifest.json" not in names:
            raise ModelError(f"{path}: no manifest.json: not an s2cac model package")
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"{path}: manifest.json is not valid JSON") from err
        if manifest.get("format") != PACKAGE_FORMAT or manifest.get("format_version") != PACKAGE_FORMAT_VERSION:
            raise ModelError(
                f"{path}: unsupported package format {manifest.get('format')!r} version "
                f"{manifest.get('format_version')!r} (expected {PACKAGE_FORMAT!r} {PACKAGE_FORMAT_VERSION})"
            )
        sums = manifest.get("sha256")
        expected = {WEIGHTS_MEMBER, *JSON_MEMBERS}
        if not isinstance(sums, dict) or set(sums) != expected:
            raise ModelError(f"{path}: manifest must list the sha256 of exactly {sorted(expected)}")
        if names != expected | {"manifest.json"}:
            raise ModelError(f"{path}: members {sorted(names)} differ from {sorted(expected | {'manifest.json'})}")
        try:
            data = {name: zf.read(name) for name in expected}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:  # a bad CRC or a cut file
            raise ModelError(f"{path}: damaged package ({err}); copy or export it again") from err
    bad = [name for name in sorted(expected) if sha256_bytes(data[name]) != sums[name]]
    if bad:
        raise ModelError(f"{path}: checksum mismatch for {bad}: the file was modified or damaged; refusing it")
    try:
        plans, dataset_json, config = (json.loads(data[n]) for n in JSON_MEMBERS)
    except json.JSONDecodeError as err:
        raise ModelError(f"{path}: a JSON member is invalid: {err}") from err
    model = LoadedModel(
        state_dict=_load_weights(data[WEIGHTS_MEMBER], f"{path}:{WEIGHTS_MEMBER}"),
        plans=plans,
        dataset_json=dataset_json,
        config=config,
        source=str(path),
        manifest=manifest,
    )
    if manifest.get("network") != network_spec(config, model.state_dict):
        raise ModelError(f"{path}: manifest network {manifest.get('network')} differs from the config's")
    check_model(model)
    return model


def load_model(path: str | Path, checkpoint: str | Path | None = None) -> LoadedModel:
    """Load a model folder or a package file (see the module docstring); raises :class:`ModelError`."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model folder or file")
    if checkpoint is not None and not path.is_dir():
        raise ModelError(f"{path}: a package holds one set of weights; a checkpoint choice applies to model folders")
    return load_model_folder(path, checkpoint) if path.is_dir() else load_package(path)


def check_model(model: LoadedModel) -> None:
    """Refuse a model whose plans, dataset.json, config and weights do not agree (raises :class:`ModelError`)."""
    src = model.source
    configs = model.plans.get("configurations")
    if not isinstance(configs, dict) or CONFIGURATION not in configs:
        raise ModelError(f"{src}: plans.json has no {CONFIGURATION!r} configuration")
    conf = configs[CONFIGURATION]
    patch = conf.get("patch_size")
    if not (isinstance(patch, list) and len(patch) == 3):
        raise ModelError(f"{src}: plans {CONFIGURATION} patch_size must be (z, y, x), got {patch!r}")
    channels = model.dataset_json.get("channel_names") or model.dataset_json.get("modality") or {}
    try:
        n_windows = len(model.hu_windows)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{src}: dataset.json has malformed HU windows: {err}") from err
    if (
        list(channels.values()) != [CHANNEL_SCHEME] * n_windows
        or conf.get("normalization_schemes") != [PLANS_SCHEME] * n_windows
    ):
        raise ModelError(
            f"{src}: this model was trained on channel(s) {channels} with normalisation "
            f"{conf.get('normalization_schemes')}; s2cac predict feeds {n_windows} HU-windowed channel(s) "
            f"(one per window in dataset.json; {CHANNEL_SCHEME!r} / {PLANS_SCHEME!r}), so plans and dataset.json "
            "must say so"
        )
    labels = model.dataset_json.get("labels")
    if not isinstance(labels, dict) or labels.get("background") != 0 or len(labels) < 2:
        raise ModelError(f"{src}: dataset.json labels must hold background 0 and a calcium label, got {labels!r}")
    try:
        net = model.build_network()
    except (ValueError, TypeError) as err:
        raise ModelError(f"{src}: config describes an invalid network: {err}") from err
    if net.head.out_channels != len(labels):
        raise ModelError(f"{src}: network has {net.head.out_channels} outputs but dataset.json {len(labels)} labels")
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d))
    if first_conv.in_channels != n_windows:
        raise ModelError(
            f"{src}: network takes {first_conv.in_channels} input channel(s) but dataset.json records "
            f"{n_windows} HU window(s)"
        )
    try:
        net.check_patch(patch)
    except ValueError as err:
        raise ModelError(f"{src}: plans patch size does not fit the network: {err}") from err
    _check_state_dict(net.state_dict(), model.state_dict, src, model.network_spec)


def _check_state_dict(expected: dict, got: dict, src: str, spec: dict) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = [k for k in set(expected) & set(got) if tuple(expected[k].shape) != tuple(got[k].shape)]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[:3]})")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(
                f"{len(shapes)} of other shape (e.g. {k}: {tuple(got[k].shape)} vs {tuple(expected[k].shape)})"
            )
        raise ModelError(f"{src}: weights do not match the configured network {spec}: " + "; ".join(parts))


def write_package(
    out_file: str | Path,
    state_dict: dict[str, torch.Tensor],
    plans: dict[str, Any],
    dataset_json: dict[str, Any],
    config: dict[str, Any],
    extra_manifest: dict[str, Any] | None = None,
) -> Path:
    """Write a package (see module docstring) atomically; the model is verified first."""
    out_file = Path(out_file)
    model = LoadedModel(dict(state_dict), plans, dataset_json, config, source=str(out_file))
    check_model(model)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    members = {WEIGHTS_MEMBER: buf.getvalue()}
    for name, obj in zip(JSON_MEMBERS, (plans, dataset_json, config), strict=True):
        members[name] = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    manifest = {
        "format": PACKAGE_FORMAT,
        "format_version": PACKAGE_FORMAT_VERSION,
        "s2cac_version": __version__,
        "torch_version": torch.__version__,
        "configuration": CONFIGURATION,
        "network": model.network_spec,
        "patch_size": list(model.patch_size),
        "sha256": {name: sha256_bytes(data) for name, data in members.items()},
        **(extra_manifest or {}),
    }
    with atomic_path(out_file) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n", zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            zf.writestr(name, data, zipfile.ZIP_STORED if name == WEIGHTS_MEMBER else zipfile.ZIP_DEFLATED)
    return out_file


def write_model_folder(
    out_dir: str | Path,
    state_dict: dict[str, torch.Tensor],
    plans: dict[str, Any],
    dataset_json: dict[str, Any],
    config: dict[str, Any],
) -> Path:
    """Write a minimal model folder (teacher checkpoint, plans, dataset.json, config) atomically."""
    from s2cac.atomic import atomic_dir

    out_dir = Path(out_dir)
    check_model(LoadedModel(dict(state_dict), plans, dataset_json, config, source=str(out_dir)))
    with atomic_dir(out_dir) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / TEACHER_CHECKPOINTS[0])
        for name, obj in zip(JSON_MEMBERS, (plans, dataset_json, config), strict=True):
            (tmp / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return out_dir


def is_package(path: str | Path) -> bool:
    """True when ``path`` is a zip file holding a ``manifest.json`` (an s2cac model package)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "manifest.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def is_model_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``plans.json`` and a teacher checkpoint (a model folder)."""
    path = Path(path)
    return (path / "plans.json").is_file() and any((path / n).is_file() for n in TEACHER_CHECKPOINTS)


def check_output(out: str | Path, overwrite: bool, kind: str) -> None:
    """Refuse to replace anything at ``out`` unless ``overwrite`` and it is an s2cac model of the same kind.

    Args:
        out: the package file or model folder to write.
        overwrite: the user asked to replace an existing output (``--overwrite``).
        kind: ``package`` or ``folder``.

    Raises:
        ModelError: ``out`` exists and may not be replaced (the message says why and what to do).
    """
    out = Path(out)
    if not out.exists():
        return
    if kind == "package" and out.is_dir():
        raise ModelError(f"{out}: is a folder; give the package's file name (e.g. {out / 'model.zip'})")
    if kind == "folder" and not out.is_dir():
        raise ModelError(f"{out}: exists and is not a folder")
    if not overwrite:
        raise ModelError(f"{out}: already exists; choose a new name, or pass --overwrite to replace it")
    is_model = is_package(out) if kind == "package" else is_model_folder(out) or not any(out.iterdir())
    if not is_model:
        what = "an s2cac model package" if kind == "package" else "an s2cac model folder (or empty)"
        raise ModelError(f"{out}: is not {what}; refusing to replace it even with --overwrite")


def export_model(
    model_dir: str | Path, out_file: str | Path, checkpoint: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Package a model folder (its teacher weights) into one verified file; returns ``out_file``.

    An existing ``out_file`` is replaced only with ``overwrite`` and only when it is a package itself (see
    :func:`check_output`): a checkpoint or any other file is never replaced.
    """
    check_output(out_file, overwrite, "package")
    model = load_model_folder(model_dir, checkpoint)
    extra = {"exported_from": Path(model_dir).name}
    return write_package(out_file, model.state_dict, model.plans, model.dataset_json, model.config, extra)
