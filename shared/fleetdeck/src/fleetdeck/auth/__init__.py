"""Identity and policy: principals, the user (JWT) and workload (SPIFFE) layers, decisions."""
