"""Process runners: build one long-running process from the settings and run it until stopped."""
