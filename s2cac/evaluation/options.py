"""The options of an evaluation, typed and checked: :class:`EvaluationOptions`.

Light (numpy through :mod:`s2cac.scoring.agatston` only), so that ``s2cac evaluate --help`` can show its
defaults. The Agatston defaults are :func:`s2cac.scoring.score_mask`'s own (read from its signature), so the
scores of an evaluation and of ``s2cac score`` / ``s2cac predict`` follow one definition.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from s2cac.scoring.agatston import score_mask

_SCORE_DEFAULTS = {
    name: p.default for name, p in inspect.signature(score_mask).parameters.items() if p.kind is p.KEYWORD_ONLY
}
#: 3D connectivities of a lesion for the detection metrics (faces, + edges, + corners).
LESION_CONNECTIVITIES = (6, 18, 26)


@dataclass(frozen=True)
class EvaluationOptions:
    """How predicted masks are scored and compared with the references.

    Attributes:
        threshold_hu: lowest calcium HU; the threshold the predicted masks were cut at (``predict.threshold_hu``).
        connectivity: 2D connectivity of Agatston lesions in an axial slice, 8 or 4.
        min_area_mm2: Agatston lesions with a smaller area (mm^2) are dropped.
        mass_calibration: calibration factor (mg HA/cm^3 per HU) for the mass score; None = no mass.
        lesion_connectivity: 3D connectivity of lesions for the detection metrics (6, 18 or 26).
        per_artery: the references label arteries (1 LM, 2 LAD, 3 LCX, 4 RCA): add per-artery Agatston columns.
        arteries: {label value: artery name} when the predictions too label arteries (an artery model): per-artery
            Agatston of prediction and reference and vessel counts; None for binary calcium masks.
    """

    threshold_hu: float = _SCORE_DEFAULTS["threshold_hu"]
    connectivity: int = _SCORE_DEFAULTS["connectivity"]
    min_area_mm2: float = _SCORE_DEFAULTS["min_area_mm2"]
    mass_calibration: float | None = _SCORE_DEFAULTS["mass_calibration"]
    lesion_connectivity: int = 26
    per_artery: bool = False
    arteries: Mapping[int, str] | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"evaluation option {message}")

        number = (int, float)
        need(
            isinstance(self.threshold_hu, number) and math.isfinite(self.threshold_hu),
            f"threshold_hu must be a finite number of HU, got {self.threshold_hu!r}",
        )
        need(self.connectivity in (4, 8), f"connectivity must be 8 or 4, got {self.connectivity!r}")
        need(
            isinstance(self.min_area_mm2, number) and math.isfinite(self.min_area_mm2) and self.min_area_mm2 >= 0,
            f"min_area_mm2 must be a number >= 0, got {self.min_area_mm2!r}",
        )
        need(
            self.mass_calibration is None
            or (isinstance(self.mass_calibration, number) and math.isfinite(self.mass_calibration))
            and self.mass_calibration > 0,
            f"mass_calibration must be a number > 0 or None, got {self.mass_calibration!r}",
        )
        need(
            self.lesion_connectivity in LESION_CONNECTIVITIES,
            f"lesion_connectivity must be one of {LESION_CONNECTIVITIES}, got {self.lesion_connectivity!r}",
        )
        need(isinstance(self.per_artery, bool), f"per_artery must be true or false, got {self.per_artery!r}")
        need(
            self.arteries is None
            or (
                isinstance(self.arteries, Mapping)
                and all(isinstance(k, int) and k > 0 and isinstance(v, str) for k, v in self.arteries.items())
            ),
            f"arteries must map label values > 0 to artery names, got {self.arteries!r}",
        )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> EvaluationOptions:
        """Options from a plain mapping (a config section, keyword arguments); an unknown key is an error that
        names it and the known ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown evaluation option(s) {unknown}; known: {known}")
        return cls(**options)

    def score_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`s2cac.scoring.score_mask`."""
        return {k: getattr(self, k) for k in ("threshold_hu", "connectivity", "min_area_mm2", "mass_calibration")}

    def to_dict(self) -> dict[str, Any]:
        """Every option by name (written into ``summary.json``)."""
        return dataclasses.asdict(self)
