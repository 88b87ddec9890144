"""Password hashing, encryption at rest and secret handling."""
