"""tune: the search space (space.py) and the Optuna study (study.py)."""
