"""s2cac: semi-supervised coronary artery calcium segmentation (S2CAC) and Agatston scoring."""

__version__ = "0.1.0"
