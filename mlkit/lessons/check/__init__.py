"""Self-checks for the lessons' exercises: pass your answer, get "Right" or a hint, never the solution.

A notebook calls ``check.<name>(answer)`` after ``from mlkit.lessons import check``;
each lesson's checks live in their own module, in exercise order
(:mod:`~mlkit.lessons.check.lesson00` to :mod:`~mlkit.lessons.check.lesson15`),
and :mod:`~mlkit.lessons.check.verdict` prints the verdict for all of them;
``check.report()`` (:mod:`~mlkit.lessons.check.results`) shows and writes a lesson's results.

Each check works the true answer out itself, from the data and models the
notebook already holds (or by training its own, with fixed seeds), so it is as
honest as the lesson's asserts. With no answer yet (``None``) a check prints
the hint and returns ``False`` without raising, so a notebook still runs top to
bottom. Worked solutions live in ``solutions/`` beside the notebooks; the test
suite runs every one of them against these checks.
"""

from mlkit.lessons.check.lesson00 import learning_rates_that_learn, one_row, small_model_accuracy, steps_in_training
from mlkit.lessons.check.lesson01 import better_batch_size, mnist_at_a_glance, stored_order_matters
from mlkit.lessons.check.lesson02 import gelu_flops_ratio, mnist_params, what_training_changes
from mlkit.lessons.check.lesson03 import best_constant_abs, equal_logits, shifted_naive_finite
from mlkit.lessons.check.lesson04 import fastest_learning_rate, network_regimes, relu_backward
from mlkit.lessons.check.lesson05 import heavier_momentum_rate, spirals_capacity, why_sgd_needs_more
from mlkit.lessons.check.lesson06 import augmentation_at_300, best_weight_decay, stopped_by_hand
from mlkit.lessons.check.lesson07 import random_search_wins, wider_grid_moves, widest_largest_rate
from mlkit.lessons.check.lesson08 import temperature_side, twice_standardised, unsure_at
from mlkit.lessons.check.lesson09 import keeps_up, rows_computed, wider_flops_ratio
from mlkit.lessons.check.lesson10 import fewer_bytes_faster, pruning_cliff, smallest_int8
from mlkit.lessons.check.lesson11 import inverted_digits, labels_for_recovery, replay_forgets_less
from mlkit.lessons.check.lesson12 import refused_batch, rows_per_device, same_numbers_why
from mlkit.lessons.check.lesson13 import status_for, why_retry_after
from mlkit.lessons.check.lesson14 import colour_conv_params, costlier_block, unscaled_accuracy
from mlkit.lessons.check.lesson15 import COMPLAINT, earns_refund, ids_of, people_at
from mlkit.lessons.check.results import report

__all__ = [
    "COMPLAINT",
    "augmentation_at_300",
    "best_constant_abs",
    "best_weight_decay",
    "better_batch_size",
    "colour_conv_params",
    "costlier_block",
    "earns_refund",
    "equal_logits",
    "fastest_learning_rate",
    "fewer_bytes_faster",
    "gelu_flops_ratio",
    "heavier_momentum_rate",
    "ids_of",
    "inverted_digits",
    "keeps_up",
    "labels_for_recovery",
    "learning_rates_that_learn",
    "mnist_at_a_glance",
    "mnist_params",
    "network_regimes",
    "one_row",
    "people_at",
    "pruning_cliff",
    "random_search_wins",
    "refused_batch",
    "relu_backward",
    "replay_forgets_less",
    "report",
    "rows_computed",
    "rows_per_device",
    "same_numbers_why",
    "shifted_naive_finite",
    "small_model_accuracy",
    "smallest_int8",
    "spirals_capacity",
    "status_for",
    "steps_in_training",
    "stopped_by_hand",
    "stored_order_matters",
    "temperature_side",
    "twice_standardised",
    "unscaled_accuracy",
    "unsure_at",
    "what_training_changes",
    "why_retry_after",
    "why_sgd_needs_more",
    "wider_flops_ratio",
    "wider_grid_moves",
    "widest_largest_rate",
]
