"""Storage edge: the registry's SQLite file and the gateway's secret files."""
