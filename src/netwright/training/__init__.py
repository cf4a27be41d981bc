"""Training: the Trainer (fit/evaluate/predict), the step functions and the callbacks."""
