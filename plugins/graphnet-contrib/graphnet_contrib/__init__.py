"""graphnet-contrib: extra activations, layer_norm and two optimizers for graphnet.

Installing the distribution is all it takes: graphnet finds
``graphnet_contrib.plugin`` through the ``graphnet`` entry-point group. Without
installing, ``graphnet.plugins.register(graphnet_contrib.plugin)`` does the same
in a running process.
"""

__version__ = "0.1.0"
