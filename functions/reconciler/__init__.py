"""The scheduled safety net: jobs whose command or worker was lost are started again, or failed."""
