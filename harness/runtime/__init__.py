"""The worker runtime: hosts a clustering algorithm on a transport."""
