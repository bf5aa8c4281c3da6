"""Every place where boostloss relies on XGBoost behaviour that is not public API, in one module.

Each item says which upstream behaviour it works around; ``tests/test_compat.py`` fails when upstream
changes that behaviour, so we know to revisit (or drop) the workaround.
"""

#: Where ``xgboost.XGBModel`` keeps the parameters passed through ``**kwargs`` (not a fitted
#: attribute). Upstream: ``XGBModel.__init__`` stores them in the ``kwargs`` attribute.
PARAMETER_STORAGE = ("kwargs",)
