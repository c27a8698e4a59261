"""What a worker process runs: the plugin SDK and registry, built-in plugins, the runtime."""
