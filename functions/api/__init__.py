"""The public HTTP API: a FastAPI app, served by uvicorn locally and by Mangum on Lambda."""
