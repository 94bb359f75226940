"""The experiments behind experiments/*.py: occupancy forecasting and the letters network."""
