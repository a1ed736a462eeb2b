"""Where a fault becomes an alert: rules, detectors, the alert store, escalation, notifications.

`rules` and `detector` are pure (no I/O); `store` applies detector signals and crew actions to
the database; `engine` runs the detectors inside the collector's batch transaction; `notifier`
delivers every alert event to the MQTT alert topic and webhooks and runs the escalation timers.
"""
