"""The REST API: control and metadata. Stepping goes over the data port."""
