"""A plugin for ``test_launch``: rank 1 of a torchrun job aborts as its interpreter exits.

That is after all of its work (training, the checkpoint's final barrier, the group's teardown), as
when gloo's sockets close under a peer still shutting down. Outside torchrun it does nothing.
"""

import atexit
import os

if os.environ.get("RANK") == "1":
    atexit.register(os.abort)
