"""Public home of the GFL losses (implemented in :mod:`gfocal.ops.losses`)."""

from gfocal.ops.losses import distribution_focal_loss, generalized_focal_loss, quality_focal_loss, reduce_loss

__all__ = ["distribution_focal_loss", "generalized_focal_loss", "quality_focal_loss", "reduce_loss"]
