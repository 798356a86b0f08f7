"""Ray batch runner: plan, actor pool, retries, ordered output, journal, summary."""
