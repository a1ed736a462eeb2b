"""Where telemetry enters: MQTT collectors, validation, dead letters and the batch writer."""
