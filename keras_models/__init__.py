"""Keras models, training and evaluation for sound event classification."""
