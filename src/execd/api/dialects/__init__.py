"""Each dialect: its paths, wire format, status spelling and error shape."""
