"""The candidate's domain: pure numpy and stdlib, never infrastructure."""
