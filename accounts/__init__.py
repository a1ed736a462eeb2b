"""People who sign in: password hashes, bearer tokens and the user records with their sites."""
