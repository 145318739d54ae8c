"""Process entry points: what runs inside each worker process (api, and later aggregator, analytics)."""
