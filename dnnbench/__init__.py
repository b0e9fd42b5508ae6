"""dnnbench: how fast can training read its dataset from this storage?

Importing the package is cheap: no deep-learning framework or storage client
library is imported until a run needs it.
"""

__version__ = "0.1.0"
