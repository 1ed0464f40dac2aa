"""Options of the synthetic cohort generator: one flat dataclass that maps 1:1 onto a YAML section.

The workflow's ``dataset.synthetic`` section and ``s2cac synth --config FILE`` both hold exactly this mapping;
:meth:`SynthConfig.from_dict` rejects unknown keys by name. Ranges are ``[low, high]`` lists (inclusive, drawn
uniformly per case unless the field says otherwise). Lengths are mm, intensities HU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _rng_field(default: list[float]) -> Any:
    return field(default_factory=lambda: list(default))


@dataclass
class SynthConfig:
    """Synthetic cardiac CT cohort options (see docs/synthetic.md for what each one changes in the images).

    Attributes:
        n_cases: number of scans (case ids ``{case_prefix}000``, ``001``, ...). Integer >= 1. Default 24.
        negative_fraction: share of scans with no coronary calcium at all (label empty, Agatston 0); the
            negatives are spread evenly over the case indices (case i is negative when
            ``floor((i + 1) * f) > floor(i * f)``), so a smaller cohort is a prefix of a larger one. In [0, 1].
            Default 0.25.
        seed: integer >= 0; case i is drawn from ``numpy.random.default_rng([seed, i])`` only, so the output is
            bit-identical across runs and independent of n_cases and of the number of worker processes.
            Default 0.
        shape_zyx: image size in voxels (slices, rows, columns). Each >= 8. Default [32, 192, 192].
        spacing_z_mm: distance between slices (= slice thickness), mm. Default 3.0.
        spacing_xy_mm: [low, high] in-plane pixel size range, mm (square pixels, drawn per case). The field of
            view is ``shape * spacing``. Default [0.6, 0.8].
        anatomy_scale: size of the anatomy relative to an adult (1.0 = adult); null (None) scales it so that
            a 250 mm adult field of view fills the image in-plane (a CPU-sized, heart-centred view that still
            shows sternum, spine, ribs and both aortae). Coronary lumens, plaques and metal keep their real
            sizes in mm. Default null.
        size_jitter: relative per-case variation of heart, thorax and aorta sizes (+-). In [0, 0.5]. Default 0.1.
        rotation_deg: maximum in-plane rotation of the anatomy per case (+-), degrees. Default 8.
        shift_mm: maximum in-plane/through-plane shift of the anatomy per case (+-), in adult mm. Default 12.
        noise_sigma_hu: [low, high] standard deviation of the (spatially correlated) Gaussian noise, HU.
            Default [15, 25].
        plaques_per_case: [low, high] number of calcified plaques in a positive scan (skewed to few). Default
            [1, 16].
        plaque_hu: [low, high] intrinsic density of a plaque, HU (log-uniform); the measured peak is lower for
            plaques smaller than a voxel (partial volume). Default [150, 1500].
        plaque_length_mm: [low, high] plaque extent along its artery, mm (log-uniform). Default [0.6, 14].
        plaque_thickness_mm: [low, high] plaque extent across the artery, mm (log-uniform). Default [0.5, 3.5].
        aortic_calc_probability: chance of aortic wall calcifications (ascending/descending aorta). Default 0.7.
        aortic_valve_probability: chance of aortic valve calcifications. Default 0.6.
        mitral_probability: chance of mitral annular calcification. Default 0.5.
        stent_probability: chance of a coronary stent (metal, > 1500 HU, never labelled). Default 0.2.
        lead_probability: chance of a pacing lead through the right heart (metal). Default 0.15.
        motion_probability: chance of mild cardiac motion blur (heart region only). Default 0.3.
        motion_sigma_mm: [low, high] motion blur (Gaussian sigma along an in-plane direction), mm.
            Default [0.4, 1.2].
        case_prefix: case id prefix (letters, digits, ``_``, ``-``). Default ``syn_``.
        overview_cases: number of cases shown in overview.png (>= 1). Default 4.
    """

    n_cases: int = 24
    negative_fraction: float = 0.25
    seed: int = 0
    shape_zyx: list[int] = field(default_factory=lambda: [32, 192, 192])
    spacing_z_mm: float = 3.0
    spacing_xy_mm: list[float] = _rng_field([0.6, 0.8])
    anatomy_scale: float | None = None
    size_jitter: float = 0.1
    rotation_deg: float = 8.0
    shift_mm: float = 12.0
    noise_sigma_hu: list[float] = _rng_field([15.0, 25.0])
    plaques_per_case: list[int] = field(default_factory=lambda: [1, 16])
    plaque_hu: list[float] = _rng_field([150.0, 1500.0])
    plaque_length_mm: list[float] = _rng_field([0.6, 14.0])
    plaque_thickness_mm: list[float] = _rng_field([0.5, 3.5])
    aortic_calc_probability: float = 0.7
    aortic_valve_probability: float = 0.6
    mitral_probability: float = 0.5
    stent_probability: float = 0.2
    lead_probability: float = 0.15
    motion_probability: float = 0.3
    motion_sigma_mm: list[float] = _rng_field([0.4, 1.2])
    case_prefix: str = "syn_"
    overview_cases: int = 4

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SynthConfig:
        """Build from a plain mapping (YAML section); unknown keys raise a ValueError that names them."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown synthetic option(s): {', '.join(map(str, unknown))}; "
                f"known options: {', '.join(sorted(known))}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (lists copied), the inverse of :meth:`from_dict`."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in dataclasses.asdict(self).items()}

    def validate(self) -> None:
        """Raise a ValueError naming the first option with a bad value."""

        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"synthetic option {name}: expected {want}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        def check_range(name: str, lo: float, hi: float, ints: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, list | tuple) and len(v) == 2 and all(is_int(x) if ints else is_num(x) for x in v)
            if not ok or not (lo <= v[0] <= v[1] <= hi):
                kind = "integers" if ints else "numbers"
                raise bad(name, f"[low, high] {kind} with {lo:g} <= low <= high <= {hi:g}")
            setattr(self, name, list(v))

        if not is_int(self.n_cases) or self.n_cases < 1:
            raise bad("n_cases", "an integer >= 1")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "an integer >= 0")
        shape = self.shape_zyx
        if not (isinstance(shape, list | tuple) and len(shape) == 3 and all(is_int(s) and s >= 8 for s in shape)):
            raise bad("shape_zyx", "three integers >= 8 (slices, rows, columns)")
        self.shape_zyx = list(shape)
        if not is_num(self.spacing_z_mm) or not 0.3 <= self.spacing_z_mm <= 10:
            raise bad("spacing_z_mm", "a number in [0.3, 10] mm")
        check_range("spacing_xy_mm", 0.1, 3.0)
        if self.anatomy_scale is not None and (not is_num(self.anatomy_scale) or not 0.2 <= self.anatomy_scale <= 2):
            raise bad("anatomy_scale", "null or a number in [0.2, 2]")
        for name, hi in (("size_jitter", 0.5), ("rotation_deg", 45.0), ("shift_mm", 50.0)):
            if not is_num(getattr(self, name)) or not 0 <= getattr(self, name) <= hi:
                raise bad(name, f"a number in [0, {hi:g}]")
        check_range("noise_sigma_hu", 0.0, 200.0)
        check_range("plaques_per_case", 1, 50, ints=True)
        check_range("plaque_hu", 50.0, 3000.0)
        check_range("plaque_length_mm", 0.1, 40.0)
        check_range("plaque_thickness_mm", 0.1, 8.0)
        check_range("motion_sigma_mm", 0.0, 5.0)
        for name in (
            "negative_fraction",
            "aortic_calc_probability",
            "aortic_valve_probability",
            "mitral_probability",
            "stent_probability",
            "lead_probability",
            "motion_probability",
        ):
            if not is_num(getattr(self, name)) or not 0 <= getattr(self, name) <= 1:
                raise bad(name, "a number in [0, 1]")
        prefix = self.case_prefix
        if not isinstance(prefix, str) or not prefix or not all(c.isalnum() or c in "_-" for c in prefix):
            raise bad("case_prefix", "a non-empty string of letters, digits, '_' or '-'")
        if not prefix[0].isalnum():
            raise bad("case_prefix", "a prefix starting with a letter or digit")
        if not is_int(self.overview_cases) or self.overview_cases < 1:
            raise bad("overview_cases", "an integer >= 1")

    def is_negative(self, index: int) -> bool:
        """Whether case ``index`` is a negative scan (even spread, see ``negative_fraction``)."""
        f = self.negative_fraction
        return math.floor((index + 1) * f + 1e-9) > math.floor(index * f + 1e-9)

    def case_id(self, index: int) -> str:
        """Case id of case ``index`` (``syn_000``; at least 3 digits)."""
        width = max(3, len(str(self.n_cases - 1)))
        return f"{self.case_prefix}{index:0{width}d}"
