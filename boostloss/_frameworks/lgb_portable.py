"""Self-contained LightGBM models: the constant start and the link stored in the model itself.

A booster trained with a callable objective predicts raw margins that lack the start
(``init_score`` lives on the ``Dataset``, never in the model) and its saved text has no
``objective=`` line, so plain LightGBM applies no link. :func:`make_portable` returns a copy
that needs neither boostloss nor the start:

- the start is added to every leaf of the first iteration's trees (tree ``k`` of that iteration
  gets ``init_score[k]`` with K classes), which is what LightGBM itself does with
  ``boost_from_average`` for its built-in objectives;
- the model text gets the objective whose link turns margins into probabilities:
  ``binary sigmoid:1`` (one tree per iteration) or ``multiclass num_class:K`` (softmax), in the
  header (what LightGBM predicts with) and in the parameters section (``[objective: binary]`` or
  ``[objective: multiclass]`` and ``[num_class: K]`` instead of ``[objective: custom]``: what
  ``Booster.params`` shows after a load, and what converters such as onnxmltools read).

Only LightGBM's public API is used: ``model_to_string``, ``Booster(model_str=...)``,
``get_leaf_output`` / ``set_leaf_output`` and ``dump_model``.
"""

import numpy as np

from ..losses import _validation as v

__all__ = ["make_portable"]

# The header of LightGBM's model text is a block of ``key=value`` lines (or bare flags such as
# ``average_output``) after the first line ("tree"), ended by an empty line; the trees follow,
# each starting with a ``Tree=i`` line. LightGBM reads the header into a key -> value map.
# Editing these lines, rather than searching the whole text, cannot touch a tree, the feature
# names or the parameters section (which may contain any text).
_HEADER_TERMINATOR = "\n\n"
_TREE_SIZES = "tree_sizes"
# After the trees (``end of trees``) and the feature importances, LightGBM writes the training
# parameters as ``[name: value]`` lines between these two lines; Booster(model_str=...) reads
# them back into ``Booster.params``. Feature names cannot hold a newline, so neither line can be
# mistaken for a tree's or an importance's line.
_END_OF_TREES = "\nend of trees\n"
_PARAMETERS_START = "\nparameters:\n"
_PARAMETERS_END = "\nend of parameters"


def _split_header(text):
    end = text.find(_HEADER_TERMINATOR)
    lines = text[:end].split("\n") if end >= 0 else []
    if not lines or lines[0] != "tree" or any(line.startswith("Tree=") for line in lines):
        raise ValueError("not a LightGBM tree model text: the header block was not found")
    return lines, text[end:]


def _header_value(lines, key):
    """The value of ``key`` in the header ("" for a bare flag), None when absent."""
    for line in lines[1:]:
        name, _, value = line.partition("=")
        if name == key:
            return value
    return None


def _objective_for(n_trees_per_iteration):
    if n_trees_per_iteration == 1:
        return "binary sigmoid:1"
    return f"multiclass num_class:{n_trees_per_iteration}"


def _with_objective(lines, objective):
    # The objective goes where LightGBM writes it (after max_feature_idx); LightGBM reads the
    # header into a key -> value map, so only the presence of the line matters, not its place.
    out = list(lines)
    at = next(
        (i + 1 for i, line in enumerate(out) if line.startswith("max_feature_idx=")), len(out)
    )
    out.insert(at, "objective=" + objective)
    return out


def _with_plain_parameters(text, n_trees_per_iteration):
    """``text`` with the parameters section of a plain binary / multiclass model.

    A training with a callable objective records ``[objective: custom]`` (and ``[num_class: 1]``
    with K classes); a model without a parameters section is returned unchanged.
    """
    k = n_trees_per_iteration
    trees_end = text.find(_END_OF_TREES)
    start = text.find(_PARAMETERS_START, max(trees_end, 0))
    end = text.find(_PARAMETERS_END, start) if start >= 0 else -1
    if trees_end < 0 or start < 0 or end < 0:
        return text
    values = {"objective": "binary" if k == 1 else "multiclass", "num_class": str(k)}
    lines = text[start + len(_PARAMETERS_START) : end].split("\n")
    seen = set()
    for i, line in enumerate(lines):
        name = line[1:].partition(":")[0]
        if line.startswith("[") and line.endswith("]") and name in values:
            lines[i] = f"[{name}: {values[name]}]"
            seen.add(name)
    # LightGBM writes every parameter; one missing (another version) is appended.
    lines += [f"[{name}: {value}]" for name, value in values.items() if name not in seen]
    return text[: start + len(_PARAMETERS_START)] + "\n".join(lines) + text[end:]


def _constant_tree_text(tree_index):
    # The text LightGBM writes for a single-leaf tree (num_leaves=1, no splits).
    keys = (
        "split_feature",
        "split_gain",
        "threshold",
        "decision_type",
        "left_child",
        "right_child",
    )
    body = [f"Tree={tree_index}", "num_leaves=1", "num_cat=0"]
    body += [f"{key}=" for key in keys]
    body += [
        "leaf_value=0",
        "leaf_weight=",
        "leaf_count=0",
        "internal_value=",
        "internal_weight=",
        "internal_count=",
        "is_linear=0",
        "shrinkage=1",
    ]
    return "\n".join(body) + "\n\n\n"


def _with_constant_trees(lines, rest, n_trees):
    """Model text with ``n_trees`` single-leaf trees of value 0 in place of an empty tree list."""
    blocks = [_constant_tree_text(k) for k in range(n_trees)]
    sizes = " ".join(str(len(block.encode("utf-8"))) for block in blocks)
    # tree_sizes lets LightGBM locate each tree; it must list the new trees' byte sizes.
    lines = [
        f"{_TREE_SIZES}={sizes}" if line.startswith(_TREE_SIZES + "=") else line for line in lines
    ]
    if _header_value(lines, _TREE_SIZES) is None:
        lines.append(f"{_TREE_SIZES}={sizes}")
    # ``rest`` starts with the blank line that ends the header: trees go right after it.
    return "\n".join(lines) + _HEADER_TERMINATOR + "".join(blocks) + rest[len(_HEADER_TERMINATOR) :]


def _check_start(init_score, n_trees_per_iteration):
    k = n_trees_per_iteration
    shape = np.shape(init_score)
    if shape not in ((), (k,)) or (shape == () and k != 1):
        want = "a float" if k == 1 else f"an array of {k} margins (one per class)"
        raise ValueError(
            f"init_score={init_score!r} does not fit a model with {k} tree(s) per "
            f"iteration; expected {want}"
        )
    values = [init_score] if shape == () else list(init_score)
    for i, value in enumerate(values):
        v.check_real("init_score" if shape == () else f"init_score[{i}]", value)
    return np.array([float(value) for value in values])


def make_portable(booster, init_score):
    """A copy of ``booster`` whose model holds the start and the link.

    Parameters
    ----------
    booster : lightgbm.Booster
        Trained with a callable objective and a constant ``init_score`` on its training set.
        It is not modified.
    init_score : float or array-like of shape (K,)
        The start of the training: a float for a binary model (one tree per iteration), K margins
        for a model with K trees per iteration (softmax over K classes). 0 for a booster continued
        (``init_model=``) from a portable model: its first trees already hold the start.

    Returns
    -------
    lightgbm.Booster
        Predicts probabilities (``raw_score=True``: the margins including the start) in plain
        LightGBM, and saves a model file that does the same. ``best_iteration`` and
        ``best_score`` are carried over, so ``save_model`` keeps saving the best iteration.
    """
    import lightgbm as lgb

    if not isinstance(booster, lgb.Booster):
        raise TypeError(f"booster must be a lightgbm.Booster, got {type(booster).__name__}")
    k = booster.num_model_per_iteration()
    start = _check_start(init_score, k)
    # num_iteration=-1: every tree, whatever best_iteration says; best_iteration is set again below.
    lines, rest = _split_header(booster.model_to_string(num_iteration=-1))
    objective = _header_value(lines, "objective")
    if objective is not None:
        raise ValueError(
            f"the model already stores objective={objective!r}: it was trained with a built-in "
            "objective (which folds its own start into the model) or is already portable; "
            "make_portable is for boosters trained with a boostloss objective"
        )
    # The objective is set in the text: LightGBM has no call that gives a trained model an
    # objective (reset_parameter({"objective": ...}) on a booster whose training data was freed,
    # as lgb.train returns it, crashes LightGBM 4.7), and predict() takes the link from this line.
    lines = _with_objective(lines, _objective_for(k))
    if booster.num_trees() == 0:
        text = _with_constant_trees(lines, rest, k)
    else:
        text = "\n".join(lines) + rest
    # The parameters section says what the header says, so that Booster.params (and whatever
    # reads it: onnxmltools, other converters) sees a plain binary / multiclass model.
    text = _with_plain_parameters(text, k)
    portable = lgb.Booster(model_str=text)

    first = portable.dump_model(num_iteration=1)["tree_info"]
    if len(first) != k:
        raise ValueError(f"expected {k} trees in the first iteration, found {len(first)}")
    for tree in first:
        if _is_linear(tree["tree_structure"]):
            # A linear tree predicts from leaf_const and leaf_coeff; set_leaf_output moves only
            # leaf_value (used for rows with missing values), so the start would be half applied.
            raise ValueError("models with linear trees (linear_tree=True) are not supported")
        tree_id = tree["tree_index"]
        shift = float(start[tree_id])
        if shift == 0.0:
            continue
        for leaf in range(tree["num_leaves"]):
            portable.set_leaf_output(tree_id, leaf, portable.get_leaf_output(tree_id, leaf) + shift)

    portable.best_iteration = booster.best_iteration
    portable.best_score = booster.best_score
    return portable


def _is_linear(node):
    while "left_child" in node:
        node = node["left_child"]
    return "leaf_coeff" in node or "leaf_const" in node
