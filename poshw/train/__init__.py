"""Training of product-of-sums models: config, loop, checkpoints, least-squares lifting.

* :class:`TrainConfig` / :func:`train` / :func:`evaluate_run` (``poshw train``, ``poshw evaluate``)
* :func:`fit_coefficients` (``min_a ||W - sum_k a_k M_k||``) and :func:`lift_model`
  (staged training, paper section 7: ``poshw train --init-from RUN``)
"""

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, Optimizer, Schedule, TrainConfig
from .lift import LiftError, LiftReport, LiftStep, lift_model
from .lsq import (
    DenseGroup, Rank1Group, assign_coefficients, basis_groups, combine_numpy, fit_basis_sum,
    fit_coefficients, gram_matrix, project, solve_normal_equations,
)
from .trainer import (
    COEFS_NAME, CONFIG_NAME, HISTORY_NAME, METRICS_NAME, SPEC_NAME, TrainResult, evaluate,
    evaluate_run, load_train_test, lr_at, make_optimizer, resume_config, shuffle_generator, train,
)

__all__ = [
    "CHECKPOINT_NAME", "COEFS_NAME", "CONFIG_NAME", "CheckpointError", "ConfigError", "DenseGroup",
    "HISTORY_NAME", "LiftError", "LiftReport", "LiftStep", "METRICS_NAME", "Optimizer",
    "Rank1Group", "SPEC_NAME", "Schedule", "TrainConfig", "TrainResult", "assign_coefficients",
    "basis_groups", "combine_numpy", "evaluate", "evaluate_run", "fit_basis_sum",
    "fit_coefficients", "gram_matrix", "lift_model", "load_checkpoint", "load_train_test", "lr_at",
    "make_optimizer", "project", "resume_config", "save_checkpoint", "shuffle_generator",
    "solve_normal_equations", "train",
]
