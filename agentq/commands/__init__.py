"""The ``agentq`` client commands, by what they act on; shared parts are in ``agentq.remote``."""
