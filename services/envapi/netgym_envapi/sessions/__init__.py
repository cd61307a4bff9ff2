"""Sessions: ``num_envs`` copies of one env, stepped as a batch in worker processes."""
