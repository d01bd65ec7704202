"""Bearer-key authentication: the master key, and virtual keys stored only as a hash."""
