"""Occupancy forecasting: ``occupancy`` trains and evaluates a run (experiments/train_occupancy.py),
``forecast`` forecasts from it (experiments/forecast.py)."""
