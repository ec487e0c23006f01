"""Use cases (executions, actions, jobs, flows, rules, accounts) and the processes that
drive executions: the worker and the reaper."""
