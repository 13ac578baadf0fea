"""Training, evaluation and prediction: the loops that run models over data."""
