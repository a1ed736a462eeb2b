"""What every LiftLedger process shares: settings, errors, the database models and engine,
the device wire protocol and the fault taxonomy.

Every other package may import this one; this one imports none of them.
"""
