"""Data half of the workflow: case sheets, nnU-Net v2 raw datasets, preprocessing and splits."""
