"""Custom Keras layers (backend-agnostic, written with keras.ops)."""
