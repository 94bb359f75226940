"""Gradient verification and the bad-input / fault case tables."""
