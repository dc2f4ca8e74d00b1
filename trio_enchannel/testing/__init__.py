"""Testing kit for Trio tools that talk to Jupyter kernels."""
