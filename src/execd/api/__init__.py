"""HTTP: the app factory, authentication, and one module per API dialect."""
