"""Running the bot as a service: signals and a clean stop, /healthz, Prometheus /metrics."""
