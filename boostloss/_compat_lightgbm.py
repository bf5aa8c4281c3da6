"""Every place where boostloss relies on LightGBM behaviour that is not public API, in one module.

Each function says which upstream behaviour it works around; ``tests/test_compat.py`` fails when
upstream changes that behaviour, so we know to revisit (or drop) the workaround.
"""

#: Where ``lightgbm.LGBMModel`` keeps the parameters passed through ``**kwargs`` (not a fitted
#: attribute). Upstream: ``LGBMModel.set_params`` stores every parameter in ``_other_params`` too.
PARAMETER_STORAGE = ("_other_params",)


def dataset_weight(dataset):
    """The sample weights of a ``lightgbm.Dataset`` (None when it has none), constructed or not.

    Upstream: ``Dataset.get_weight()`` raises a bare ``Exception`` ("Cannot get weight before
    construct Dataset") on a Dataset that has not been constructed yet, and LightGBM has no public
    "is constructed" test; the private ``_handle`` is None until construction. The weights given to
    the constructor are kept in the public ``weight`` attribute either way.
    """
    if dataset.weight is not None:
        return dataset.weight
    if getattr(dataset, "_handle", None) is None:
        return None
    return dataset.get_weight()


def skip_redundant_objective_reset(env):
    """Callback, before the first round: tell the Booster its objective is already ``"none"``.

    Upstream: with a callable objective, ``Booster.update`` first calls ``reset_parameter({"objective":
    "none"})`` (guarded by the private flag ``Booster.__set_objective_to_none``). The scikit-learn
    wrapper has created the Booster with that objective already, so the call changes nothing, but
    LightGBM aborts in it (``Check failed: num_features() > 0``) when no feature is usable (all
    constant, or none splittable under ``min_child_samples`` on a small set), where the built-in
    objective trains a constant model. Skipping the redundant reset gives the same constant model
    here: one empty tree, so the prediction is the start.
    """
    if env.iteration == env.begin_iteration:
        env.model._Booster__set_objective_to_none = True


skip_redundant_objective_reset.before_iteration = True
skip_redundant_objective_reset.order = 0


def set_booster(estimator, booster):
    """Give a fitted ``lightgbm.LGBMModel`` another Booster (the self-contained copy of its own).

    Upstream: the scikit-learn wrapper keeps its Booster in the private ``_Booster`` (``booster_``
    is a read-only property) and offers no public way to replace it after ``fit``.
    """
    estimator._Booster = booster
