"""Delivering alert notices: the event feed, the notifier, webhooks and the MQTT alert topic."""
