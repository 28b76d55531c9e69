"""Temperature scaling (Guo et al., 2017): one scalar T > 0, fitted on the validation split, that divides
the logits so probabilities are neither over- nor under-confident. It never changes the predicted class,
only the log loss. Calibrated probabilities = activation(logits / T).

T is the most probable value given the validation split (its NLL plus a log-normal prior centred on T = 1),
not the NLL's minimum alone: on a split with few or no errors, which transfer learning on a small data set
gives, the NLL keeps falling as T -> 0, and the minimum turned every probability into 0 or 1 (T = 0.05 on 62
error-free val photos; log loss on unseen photos 0.18 against 0.037 uncalibrated). With the prior, a large
split still moves T where its data says (T = 2.45 for a true 2.5 on 4,000 examples).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

T_RANGE = (0.05, 20.0)  # wider than any sane model needs; keeps the 1-D search bounded
LOG_T_PRIOR_SD = 0.25  # the prior's spread of log T: T between 0.6 and 1.65 at two standard deviations


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
    """The T in T_RANGE that maximises the posterior: validation NLL (summed) plus the log-normal prior on T."""
    z = _as_logits(logits)
    if len(z) == 0:
        raise ValueError("cannot fit a temperature on zero examples")

    def neg_log_posterior(log_t):
        return len(z) * log_loss(z, labels, np.exp(log_t)) + 0.5 * (log_t / LOG_T_PRIOR_SD) ** 2

    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    result = minimize_scalar(neg_log_posterior, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    best = float(np.exp(result.x))
    # the bounded search can stop a hair off T=1 on data that is already calibrated; never make things worse
    return best if log_loss(z, labels, best) <= log_loss(z, labels, 1.0) else 1.0


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated probabilities: sigmoid (N, 1) for binary logits, softmax (N, C) otherwise."""
    z = _as_logits(logits) / float(temperature)
    if z.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-z))
    return softmax(z, axis=1)
