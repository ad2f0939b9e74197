"""The engine: the training loop and inference for any architecture and any task.

- :mod:`.train`: ``fit`` (epochs, steps, early stopping, checkpoints) and evaluation of a set.
- :mod:`.predict`: batched inference in input order, device choice, memory limits.
- :mod:`.inputs`: what prediction reads, encoded and checked chunk by chunk (no torch).
- :mod:`.checkpoint`: the resumable state of a run.
- :mod:`.schedules`: learning-rate schedules and the monitored metric.
- :mod:`.distributed`: ``torchrun`` (DDP) set-up and loss weighting across ranks.
- :mod:`.cv`: cross-validation folds and out-of-fold predictions.
- :mod:`.finetune`: ``--init-from``: the parent's settings, weights and checks.
"""
