"""Image input and output: CT volumes (files or DICOM series) and label maps as (z, y, x) arrays with geometry."""

from s2cac.io.images import Geometry, check_hu, check_label_map, read_ct, read_image, read_label_map, write_image

__all__ = ["Geometry", "check_hu", "check_label_map", "read_ct", "read_image", "read_label_map", "write_image"]
