"""Constants shared by the kernels and the Python layers (no numba import: importing is cheap)."""

#: Every Hessian is floored at this value before the sample weight multiplies it (XGBoost's built-in
#: logistic objective uses the same floor). Boosting needs a strictly positive Hessian.
HESSIAN_FLOOR = 1e-16

#: Hessian policies of the focal loss, as passed to the kernels.
HESSIAN_EXACT = 0
HESSIAN_GAUSS_NEWTON = 1
#: The exact second derivative, bounded below by the Gauss-Newton one (the larger of the two).
HESSIAN_BOUNDED = 2
