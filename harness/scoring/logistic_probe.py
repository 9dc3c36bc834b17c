"""A logistic-regression probe solved to its optimum: the linear probe of UNI and CONCH (after CLIP).

Multinomial logistic regression with an L2 penalty on the weights (not the bias), fitted on all the
labelled non-test items at once by full-batch L-BFGS with a strong-Wolfe line search, from zeros.
The objective is scikit-learn's, divided by C * n so that it reads as a mean loss:

    mean cross-entropy + ||W||^2 / (2 C n)

It is strictly convex, so its optimum is unique and the fit needs no seed and no validation split;
the fit reaches the optimum of `sklearn.linear_model.LogisticRegression(C=C)` on the same arrays
(tests/tasks/test_real_feature_table.py, on the real Kather-2016 table: to 1e-7 of the objective). The cost defaults to UNI's
C = d * K / 100 (d embedding dims, K classes). UNI's own torch path (`use_sklearn=False`, its
default) penalises the norm, not the squared norm, with a mean loss; this is scikit-learn's
objective, which UNI's `use_sklearn=True` path fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn


def uni_cost(dims: int, n_classes: int) -> float:
    """UNI's inverse regularisation strength, C = d * K / 100 (its linear_probe.py)."""
    return dims * n_classes / 100


@dataclass
class FittedLogistic:
    layer: nn.Linear
    iterations: int  # L-BFGS function evaluations
    cost: float
    loss: float  # the objective where the fit stopped
    gradient: float  # the largest absolute entry of its gradient there (0 at the optimum)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.layer(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def fit_logistic_probe(x: np.ndarray, y: np.ndarray, n_classes: int, cost: float | None = None,
                       max_iter: int = 1000) -> FittedLogistic:
    """The optimum of the objective above on (x, y), in float64 (float32 stops short of it: the
    objective is flat along some directions when the classes are nearly separable). `max_iter` is
    L-BFGS's iterations (UNI: 1,000); where it runs out, `gradient` says how far from the optimum."""
    if cost is not None and cost <= 0:
        raise ValueError(f"the logistic probe's cost C must be positive, got {cost}")
    return _fit(np.asarray(x, dtype=np.float64), np.asarray(y), n_classes,
                uni_cost(x.shape[1], n_classes) if cost is None else float(cost), max_iter)


def _fit(x: np.ndarray, y: np.ndarray, n_classes: int, cost: float, max_iter: int) -> FittedLogistic:
    import torch
    from torch import nn

    xt, yt = torch.from_numpy(x), torch.as_tensor(y, dtype=torch.int64)
    layer = nn.Linear(x.shape[1], n_classes, dtype=torch.float64)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    penalty = 1.0 / (2.0 * cost * len(y))
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=max_iter, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimiser.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(layer(xt), yt) + penalty * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(objective)
    loss = float(objective().detach())
    gradient = max(float(p.grad.abs().max()) for p in layer.parameters())
    evaluations = int(optimiser.state[layer.weight]["func_evals"])  # L-BFGS keeps its counts with the first parameter
    return FittedLogistic(layer=layer, iterations=evaluations, cost=cost, loss=loss, gradient=gradient)
