"""Layer 7, notebooks: executing nbformat notebooks (nbclient's fidelity), papermill-style
parameters, safe output files.

May import: the launcher, the client and everything below them.
"""
