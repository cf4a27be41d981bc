"""Choosing the learning rate and the hyperparameters: the LR range test (:mod:`.lr_find`) and
a resumable Optuna search over a config's ``tune:`` section (:mod:`.search`)."""
