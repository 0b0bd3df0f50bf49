"""``faena bench``: what a deployment's broker sustains, measured from the user's machine with
one real worker process (enqueue, drain, enqueue-to-start latency). The repository's
``bench/`` harness keeps the comparisons with other job queues."""
