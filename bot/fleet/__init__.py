"""The GPU fleet: the worker's models as a Ray Serve application behind one URL.

Modules: spec (what to deploy: models, replicas, GPUs, batching; no Ray import), board (where
replicas report for /health), replica (one model's pipeline per replica, with @serve.batch),
app (the HTTP ingress and the application graph), main (`imagine-bot fleet`). The pipelines,
request validation, samplers, API key check and error answers are the worker's (bot.worker).
Nothing here is imported by the bot unless the fleet runs, so the bot does not need Ray.
"""
