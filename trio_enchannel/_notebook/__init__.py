"""Layer 7, notebooks: executing nbformat notebooks (nbclient's fidelity), papermill-style
parameters, safe output files.

May import: ``_launch``, ``_remote``, ``_client``, ``_channels``, ``_io``, ``_wire`` and
the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, attrs, and nbformat and PyYAML (the ``notebook`` extra,
imported when used).
"""
