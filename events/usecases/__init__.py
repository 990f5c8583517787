"""The use cases: the flows and decisions of the service, written against the ports in `ports.py`.

They import only the kernel (`events/`), the standard library and pydantic, and raise the errors of
`errors.py`; the adapters that satisfy the ports live in `infra/`, the entry points in `functions/` and
`workers/`.
"""
