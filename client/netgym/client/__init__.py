"""The client side: REST calls, the data connection, and the Gymnasium envs on top."""
