"""Layer 6, the launcher: kernel specs, starting and stopping kernel processes, and
:func:`open_kernel` (a launched kernel with a client).

May import: ``_remote``, ``_client``, ``_channels``, ``_io``, ``_wire`` and the base modules
(``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, attrs, jupyter_core, and ipykernel when installed (its
built-in ``python3`` spec).

Inside, one job per module, each importing only those listed before it: ``_kernelspec``
(finding kernelspecs), ``_argv`` (a kernel's command line and environment), ``_process`` (one
process: spawn, output, signals, reaping), ``_ports`` (port collisions), ``_kernel`` (the
:class:`Kernel` lifecycle), ``_options`` (:func:`open_kernel`'s checked options), ``_open``
(:func:`open_kernel`).
"""
