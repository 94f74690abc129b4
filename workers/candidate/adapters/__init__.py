"""Adapters: repositories (memory, Redis), the collecting publisher, label generators, the runtime face."""
