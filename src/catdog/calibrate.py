"""Temperature scaling (Guo et al., 2017): one scalar T > 0, fitted on the validation split, that divides
the logits so probabilities are neither over- nor under-confident. It never changes the predicted class,
only the log loss. Calibrated probabilities = activation(logits / T).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

T_RANGE = (0.05, 20.0)  # wider than any sane model needs; keeps the 1-D search bounded


def _as_logits(logits) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise ValueError(f"logits must be (N,) or (N, C); got shape {z.shape}")
    return z


def log_loss(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log likelihood of integer labels under activation(logits / T).

    (N, 1) or (N,) logits are binary (sigmoid, P(label 1)); (N, C) logits are softmax over C classes.
    """
    z = _as_logits(logits) / float(temperature)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(y) != len(z):
        raise ValueError(f"{len(z)} logits but {len(y)} labels")
    if z.shape[1] == 1:
        z = z[:, 0]
        # -log sigmoid(z) for y=1 and -log(1 - sigmoid(z)) for y=0, computed stably: softplus(z) - y*z
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    return float(-np.mean(log_softmax(z, axis=1)[np.arange(len(y)), y]))


def fit_temperature(logits, labels) -> float:
    """The T in T_RANGE minimising validation NLL (bounded 1-D search over log T)."""
    z = _as_logits(logits)
    if len(z) == 0:
        raise ValueError("cannot fit a temperature on zero examples")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    result = minimize_scalar(lambda log_t: log_loss(z, labels, np.exp(log_t)), bounds=(lo, hi), method="bounded",
                             options={"xatol": 1e-4})
    best = float(np.exp(result.x))
    # the bounded search can stop a hair off T=1 on data that is already calibrated; never make things worse
    return best if log_loss(z, labels, best) <= log_loss(z, labels, 1.0) else 1.0


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated probabilities: sigmoid (N, 1) for binary logits, softmax (N, C) otherwise."""
    z = _as_logits(logits) / float(temperature)
    if z.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-z))
    return softmax(z, axis=1)
