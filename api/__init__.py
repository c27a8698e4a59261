"""The HTTP ingress: routes, schemas, error mapping. Sends tasks by name; no plugin code."""
