"""Emulator games: the bridge protocol to a FCEUX instance, and the Gymnasium env over it.

The emulator service launches and supervises FCEUX instances; the env here
leases one from it over REST and then talks to the instance's Lua bridge
directly, so frames never pass through the service.
"""
