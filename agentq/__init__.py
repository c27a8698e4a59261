"""The ``agentq`` command line: run the whole system locally, migrate the database."""
