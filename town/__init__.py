"""The town platform (DESIGN §6.3): ingest of every building's events, the register of tenants,
signed roster pushes, the town API and page, on PostgreSQL (SQLite for a demo)."""
