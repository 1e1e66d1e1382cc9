"""The pod side: fetch a version's artifact verified, load it, serve it over the Open Inference
Protocol.

fetch, loader and codec import no KServe; runtime and server are the thin adapter to it.
"""
