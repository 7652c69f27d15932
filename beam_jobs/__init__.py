"""Apache Beam jobs and the pure functions they run: datasets -> manifests -> log-mel TFRecords."""
