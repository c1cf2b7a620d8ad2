"""The lab: simulated hosts on this machine, for the demo, end-to-end tests and benchmarks.

Each node is a real SSH server on its own loopback address whose commands run
in a real bash inside the node's own Linux namespaces; tools that cannot run
here are shims (``installer.lab.shims``) that answer like the real ones.
``fmp-install lab up|status|down`` drives it (``installer.lab.control``).
"""
