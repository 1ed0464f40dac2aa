"""Former home of the atomic-write helpers, now :mod:`s2cac.atomic` (kept so that older imports still work)."""

from s2cac.atomic import atomic_dir, atomic_path, atomic_write_json, atomic_write_text

__all__ = ["atomic_dir", "atomic_path", "atomic_write_json", "atomic_write_text"]
