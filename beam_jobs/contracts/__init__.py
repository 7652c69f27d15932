"""The contracts every layer shares: the bottom of the module graph.

Feature parameters (params), audio decoding and the log-mel front end (features), the TFRecord schema
(schema), the manifest folder (manifest), the feature-set folder (feature_set), patch-to-clip score
aggregation (aggregation) and small-file storage on any Beam filesystem (storage). Modules here import
only each other, numpy, scipy, the audio libraries and Beam's filesystems: never TensorFlow or Keras,
never the jobs of `beam_jobs` or the models of `keras_models`, which both build on them.
"""
