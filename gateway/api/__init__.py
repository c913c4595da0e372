"""The administrators' and police's HTTP API (FastAPI), served inside the daemon."""
