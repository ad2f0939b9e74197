"""tune: the search space (space.py), the Optuna study (study.py: tune itself; storage.py,
trials.py, results.py) and the search's figures (figures.py)."""
