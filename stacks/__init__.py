"""The Pulumi side of otelstack: the program (platform/), its components (components/) and the policy pack
(policy/). The objects themselves come from ``otelstack.kubernetes``; this package only creates them."""
