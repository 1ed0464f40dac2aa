"""S2CAC training: method config, losses, schedules and the nnU-Net v2 trainer subclass.

Heavy modules (the trainer, nnU-Net imports) are imported on use, not here.
"""

from s2cac.training.config import MethodConfig, NSBConfig, load_method_config

__all__ = ["MethodConfig", "NSBConfig", "load_method_config"]
