"""The GPU worker: diffusers pipelines behind Segmind's HTTP contract (`imagine-bot worker`).

Modules: sources (where weights come from), pipelines (loading and generating), samplers
(names -> diffusers schedulers), noise (seeds and variation seeds), params (request
validation), queue (one job at a time), app (the HTTP routes), main (the command line),
synthetic (random-weight pipelines for tests and the benchmark). Nothing here is imported by
the bot unless the worker runs, so the bot does not need torch.
"""
