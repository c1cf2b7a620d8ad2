"""Shims: the tools a lab node cannot really run, answering as the real ones do.

Everything here runs inside a node (``python -I -S``), so it imports only the
standard library and (lazily) PyYAML. One entry point, ``main``, dispatches on
the name the shim was called by. Node facts come from ``/run/fmp-lab/node``
(node.json), cluster state shared by all nodes from ``/run/fmp-lab/state``.
"""
