"""HTTP: the app factory, authentication, one package per API dialect, the dashboard."""
