"""Use cases and the processes that drive executions: service, worker, reaper."""
