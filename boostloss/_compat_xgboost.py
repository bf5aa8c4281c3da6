"""Every place where boostloss relies on XGBoost behaviour that is not public API, in one module.

Each item says which upstream behaviour it works around; ``tests/test_compat.py`` fails when upstream
changes that behaviour, so we know to revisit (or drop) the workaround.
"""

#: Where ``xgboost.XGBModel`` keeps the parameters passed through ``**kwargs`` (not a fitted
#: attribute). Upstream: ``XGBModel.__init__`` stores them in the ``kwargs`` attribute.
PARAMETER_STORAGE = ("kwargs",)


def _version():
    import xgboost as xgb

    return tuple(int(part) for part in xgb.__version__.split(".")[:2])


def takes_vector_base_score():
    """Whether ``base_score`` may be a K-vector of margins for a ``num_class=K`` model.

    Upstream: XGBoost >= 3.1 stores a vector intercept for multi-output models; before, ``base_score``
    is one float ("Invalid Parameter format for base_score expect float"), added to every class's
    margin, so it cannot hold a K-class start. There the start goes in as ``base_margin`` instead
    (rows of the K margins), in ``fit`` and at prediction.
    """
    return _version() >= (3, 1)
