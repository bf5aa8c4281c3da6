"""The bottom layer: numba kernels (per-sample math and the loops over rows) and what they need.

Nothing here imports the rest of boostloss. Importing this package imports no numba kernel: the
kernel modules are imported on first use through :func:`boostloss._kernels.cache.kernels`.
"""
