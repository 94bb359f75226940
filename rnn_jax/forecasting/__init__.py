"""Occupancy forecasting end to end: ``occupancy`` trains and evaluates a run
(experiments/train_occupancy.py), ``forecast`` forecasts from a finished run
(experiments/forecast.py)."""
