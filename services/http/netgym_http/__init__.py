"""What the netgym services' REST APIs share: one error body for every failure."""
