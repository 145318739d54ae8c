"""Process entry points: what runs inside each worker process (api, aggregator, analytics).

spawned.py is how the master starts them (`boltlink __worker__`, without the CLI); the rest is the roles.
"""
