"""One test run that can be trusted: a private run folder, the test command started in
the sandbox (whole, in shards, or a flaky test re-run apart), the probe's report channel
and canaries, and the outcomes read back from them. It knows nothing of verdicts: the
gate (`evolution.gate`) decides what a run means.
"""
