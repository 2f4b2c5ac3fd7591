"""The production path: store, registry, policy, trainer, router, HTTP app and worker.

Nothing is imported here so that ``import lifelong.system`` stays cheap; import the
modules you use (``lifelong.system.store``, ``lifelong.system.registry``...).
"""
