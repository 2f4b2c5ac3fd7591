"""HTTP routers of the serving system, one module per resource; ``lifelong.system.app`` mounts them."""
