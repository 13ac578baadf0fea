"""gfocal: Generalized Focal Loss (GFL) object detectors.

The layers, bottom-up: ``gfocal.ops`` (the method's math), ``gfocal.models``
(detector, head, ATSS assignment), ``gfocal.data`` (datasets), ``gfocal.engine``
(training and evaluation), then analysis, export and interop on top; ``gfocal.cli``
only parses arguments and prints.
"""

__version__ = "0.1.0"
