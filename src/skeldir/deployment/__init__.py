"""Running and checking a deployment: provision roles, migrate, start embedded services, doctor."""
