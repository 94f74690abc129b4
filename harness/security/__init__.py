"""Redis ACL users per role, and the production grant that moves with the primary."""
