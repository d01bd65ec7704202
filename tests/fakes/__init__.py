"""Fake upstreams: small ASGI apps that speak one provider's real wire format and reject anything else."""
