"""Scrape-time collectors of the model server's resources; each is isolated (see base.Isolated)."""
