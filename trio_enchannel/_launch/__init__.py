"""Layer 6, the launcher: kernel specs, starting and stopping kernel processes, and
:func:`open_kernel` (a launched kernel with a client).

May import: the client, channels, I/O, wire and the base modules.

Inside, one job per module, each importing only those listed before it: ``_kernelspec``
(finding kernelspecs), ``_argv`` (a kernel's command line and environment), ``_process`` (one
process: spawn, output, signals, reaping), ``_ports`` (port collisions), ``_kernel`` (the
:class:`Kernel` lifecycle), ``_open`` (:func:`open_kernel`).
"""
