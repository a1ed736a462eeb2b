"""The `liftledger` command line and the operation of the local stack."""
