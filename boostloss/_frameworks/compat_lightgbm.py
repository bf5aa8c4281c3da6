"""Every place where boostloss relies on LightGBM behaviour that is not public API, in one module.

Each function says which upstream behaviour it works around; ``tests/test_compat.py`` fails when
upstream changes that behaviour, so we know to revisit (or drop) the workaround.
"""

import inspect

import numpy as np

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

    Upstream: with a callable objective, ``Booster.update`` first calls
    ``reset_parameter({"objective": "none"})`` (guarded by the private flag
    ``Booster.__set_objective_to_none``). The scikit-learn wrapper has created the Booster with that
    objective already, so the call changes nothing, but LightGBM aborts in it
    (``Check failed: num_features() > 0``) when no feature is usable (all constant, or none
    splittable under ``min_child_samples`` on a small set), where the built-in objective trains a
    constant model. Skipping the redundant reset gives the same constant model here: one empty tree,
    so the prediction is the start.
    """
    if env.iteration == env.begin_iteration:
        env.model._Booster__set_objective_to_none = True


skip_redundant_objective_reset.before_iteration = True  # type: ignore[attr-defined]
skip_redundant_objective_reset.order = 0  # type: ignore[attr-defined]


def set_booster(estimator, booster):
    """Give a fitted ``lightgbm.LGBMModel`` another Booster (the self-contained copy of its own).

    Upstream: the scikit-learn wrapper keeps its Booster in the private ``_Booster`` (``booster_``
    is a read-only property) and offers no public way to replace it after ``fit``.
    """
    estimator._Booster = booster


def estimator_param_names():
    """The constructor parameters of ``lightgbm.LGBMModel``.

    Upstream (LightGBM < 4.6): ``LGBMModel.get_params`` of a subclass reads only the subclass's own
    ``__init__`` signature, so ``boostloss.LGBMClassifier(loss=..., n_estimators=7).get_params()``
    would lose every LightGBM parameter (and ``clone`` with it). 4.6 walks the parent classes.
    """
    import lightgbm as lgb

    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        name
        for name, p in inspect.signature(lgb.LGBMModel.__init__).parameters.items()
        if name != "self" and p.kind in kinds
    ]


def fit_takes_eval_xy():
    """Upstream: ``LGBMClassifier.fit(eval_X=, eval_y=)`` exists from LightGBM 4.7 (which deprecates
    ``eval_set``); before, only ``eval_set`` exists."""
    import lightgbm as lgb

    return "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters


def set_binary_fitted_state(estimator, classes):
    """Give a fitted LightGBM estimator the label encoder, classes and objective of a binary model.

    Upstream: the scikit-learn wrapper keeps them privately (``_le``, ``_classes``, ``_objective``)
    and sets them only in its own ``fit``; ``boostloss.dask.DaskLGBMClassifier`` trains on labels
    encoded to 0/1 and then folds the start into a self-contained binary model, after which
    predictions must take LightGBM's own binary path with the original labels.
    """
    from lightgbm.sklearn import _LGBMLabelEncoder

    estimator._le = _LGBMLabelEncoder().fit(np.asarray(classes))
    estimator._classes = estimator._le.classes_
    estimator._objective = "binary"


def dask_to_local(estimator, model_factory, params, extension_params=("loss",)):
    """``lightgbm.dask``'s ``to_local`` for an estimator with parameters of its own (``loss``).

    Upstream: ``DaskLGBMClassifier._lgb_dask_to_local`` builds the local model from
    ``get_params()`` (where ``loss`` is an alias of ``objective``) and copies the fitted state with
    the private ``_lgb_dask_copy_extra_params``; the Dask ``client`` must not reach the local model.
    ``params`` are the parameters of the local model; ``extension_params`` are not copied.
    """
    params = dict(params)
    params.pop("client", None)
    model = model_factory(**params)
    estimator._lgb_dask_copy_extra_params(source=estimator, dest=model)
    model._other_params.pop("client", None)
    for name in extension_params:
        vars(model).pop(name, None)
    return model


class DaskEstimatorExtension:
    """Mixin for a subclass of ``lightgbm.DaskLGBMClassifier`` with constructor parameters of its
    own (``extension_params``, and their nested ``name__key`` forms), which the local model of
    ``to_local()`` must not get; put it before that class among the bases.

    Upstream: ``to_local()`` calls the private ``_DaskLGBMModel._lgb_dask_to_local(model_factory)``
    (see :func:`dask_to_local`), which the mixin overrides. ``LGBMModel.get_params`` (LightGBM
    >= 4.6) reads the parameters of ``__bases__[0]``, or of ``__bases__[1]`` when the first base
    has no ``get_params``: derive one class from this mixin and ``lightgbm.DaskLGBMClassifier``,
    and put at most one other mixin before it.
    """

    #: The constructor parameters of the subclass that LightGBM does not know.
    extension_params: tuple[str, ...] = ()

    def _lgb_dask_to_local(self, model_factory):
        params = {
            key: value
            for key, value in self.get_params().items()  # type: ignore[attr-defined]
            if key.partition("__")[0] not in self.extension_params
        }
        return dask_to_local(self, model_factory, params, self.extension_params)


def copy_fitted_state(source, dest, *, skip=()):
    """Give ``dest`` the fitted state of ``source``, both LightGBM scikit-learn estimators.

    Every instance attribute of ``source`` except its parameters (``get_params(deep=False)``),
    :data:`PARAMETER_STORAGE` and the names in ``skip``. Upstream: ``lightgbm.LGBMModel`` keeps
    its fitted state as plain instance attributes, private ones included (``_Booster``,
    ``_evals_result``, ``_best_iteration``, ``_n_features``, ``_classes``, ``_le``,
    ``_objective`` ...; ``booster_``, ``classes_`` and the others are properties reading them),
    and offers no public way to hand it to another estimator (``lightgbm.dask`` copies it the same
    way, in the private ``_lgb_dask_copy_extra_params``).
    """
    skip = set(source.get_params(deep=False)) | set(PARAMETER_STORAGE) | set(skip)
    for key, value in vars(source).items():
        if key not in skip:
            setattr(dest, key, value)
    return dest
