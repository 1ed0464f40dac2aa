"""The names s2cac fixes when it talks to nnU-Net v2, in one place (plain values: importing this costs nothing).

nnU-Net's planner, preprocessing, trainer and predictor find their data by these names; the data stages write
them, training and inference read them, so each is defined here once.
"""

#: The one nnU-Net configuration s2cac plans, preprocesses, trains and predicts with.
CONFIGURATION = "3d_fullres"
#: nnU-Net's plans identifier: ``nnUNetPlans.json`` and the data folder ``nnUNetPlans_3d_fullres/``.
PLANS_IDENTIFIER = "nnUNetPlans"
#: dataset.json channel normalisation of s2cac's HU-windowed uint8 images: divide by 255, nothing else.
CHANNEL_SCHEME = "rgb_to_0_1"
#: The same normalisation as nnU-Net names it in the plans' ``normalization_schemes``.
PLANS_SCHEME = "RGBTo01Normalization"


def data_identifier() -> str:
    """Name of the preprocessed data folder (``nnUNetPlans_3d_fullres``)."""
    return f"{PLANS_IDENTIFIER}_{CONFIGURATION}"
